package io.kiln.cli;

import io.kiln.sdk.Progress;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.Locale;

/** Formatting shared by the commands. */
final class Fmt {
    private static final DateTimeFormatter DATE_TIME =
            DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss").withZone(ZoneId.systemDefault());
    private static final DateTimeFormatter TIME =
            DateTimeFormatter.ofPattern("HH:mm:ss.SSS").withZone(ZoneId.systemDefault());

    private Fmt() {
    }

    static String dash(String s) {
        return s == null || s.isBlank() ? "-" : s;
    }

    static Instant instant(String iso) {
        if (iso == null || iso.isBlank()) {
            return null;
        }
        try {
            return Instant.parse(iso);
        } catch (DateTimeParseException e) {
            return null;
        }
    }

    /** ISO instant -> local {@code yyyy-MM-dd HH:mm:ss}; other text as is; "-" when empty. */
    static String dateTime(String iso) {
        Instant i = instant(iso);
        return i != null ? DATE_TIME.format(i) : dash(iso);
    }

    /** ISO instant -> local {@code HH:mm:ss.SSS}. */
    static String time(String iso) {
        Instant i = instant(iso);
        return i != null ? TIME.format(i) : dash(iso);
    }

    static String number(Double d, int decimals) {
        return d == null || d.isNaN() ? "-" : String.format(Locale.ROOT, "%." + decimals + "f", d);
    }

    /** {@code 120/469 (26%)}, or "-" without a total. */
    static String progress(Progress p) {
        if (p == null || p.totalSteps() <= 0) {
            return "-";
        }
        return p.step() + "/" + p.totalSteps() + " (" + Math.round(p.fraction() * 100) + "%)";
    }

    /** {@code 1m 12.3s} between two ISO instants, or null. */
    static String duration(String fromIso, String toIso) {
        Instant a = instant(fromIso);
        Instant b = instant(toIso);
        if (a == null || b == null || b.isBefore(a)) {
            return null;
        }
        return duration(Duration.between(a, b));
    }

    static String duration(Duration d) {
        long ms = d.toMillis();
        if (ms < 60_000) {
            return String.format(Locale.ROOT, "%.1fs", ms / 1000.0);
        }
        long s = ms / 1000;
        if (s < 3600) {
            return (s / 60) + "m " + (s % 60) + "s";
        }
        return (s / 3600) + "h " + ((s % 3600) / 60) + "m";
    }
}
