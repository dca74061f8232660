package io.kiln.cli;

import io.kiln.sdk.JobStatus;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import io.kiln.sdk.KilnConnectionException;
import io.kiln.sdk.KilnException;
import io.kiln.sdk.Progress;
import io.kiln.sdk.SseEvent;
import io.kiln.sdk.StatusEvent;
import java.io.PrintWriter;
import java.util.Locale;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * Follows a job's {@code /metrics?follow=true} stream: a progress bar (steps done / total steps,
 * with epoch, loss and samples/s as its message) on a terminal, a line every 10% otherwise; then
 * prints status, test accuracy and model URI. Reconnects when the stream drops before the end.
 */
final class JobFollower {
    private static final int MAX_RECONNECTS = 10;

    private final KilnClient client;
    private final PrintWriter out;
    private final PrintWriter err;
    private final boolean interactive;

    private ProgressBar bar;
    private String status;
    private StatusEvent finalStatus;
    private long lastPct = -1;
    private long lastLineNanos;

    JobFollower(KilnClient client, PrintWriter out, PrintWriter err, boolean interactive) {
        this.client = client;
        this.out = out;
        this.err = err;
        this.interactive = interactive;
    }

    /** Follows until the job is final; prints the summary; returns 0 when Completed, else 1. */
    int follow(JobView job) {
        String id = job.id();
        status = job.status();
        out.println("Job " + id + " (" + job.name() + ") submitted: " + status);
        out.flush();
        Thread hook = new Thread(() -> {
            closeBar(false);
            System.err.println();
            System.err.println("Stopped following. Job " + id + " keeps running: ./kiln logs -f " + id
                    + "  |  ./kiln describe " + id + "  |  ./kiln stop " + id);
        }, "kiln-follow-interrupted");
        Runtime.getRuntime().addShutdownHook(hook);
        String end = null;
        try {
            int failures = 0;
            while (end == null) {
                try {
                    end = client.streamMetrics(id, true, this::onEvent);
                } catch (KilnConnectionException e) {
                    if (++failures > MAX_RECONNECTS) {
                        throw e;
                    }
                    note("lost the metrics stream (" + e.getMessage() + "); reconnecting");
                    sleep(Math.min(1000L * failures, 5000L));
                    continue;
                }
                if (end == null) {
                    if (++failures > MAX_RECONNECTS) {
                        throw new KilnException("the metrics stream of " + id + " keeps ending before the job is final");
                    }
                    sleep(Math.min(1000L * failures, 5000L));
                }
            }
        } finally {
            closeBar(JobStatus.COMPLETED.equals(end));
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException ignored) {
                // JVM is shutting down
            }
        }
        JobView fin = null;
        try {
            fin = client.getJob(id);
        } catch (KilnException e) {
            // fall back to what the stream said
        }
        return summary(id, fin, end);
    }

    private void onEvent(SseEvent ev) {
        try {
            switch (ev.event()) {
                case "progress":
                    onProgress(ev.as(Progress.class));
                    break;
                case "status":
                    onStatus(ev.as(StatusEvent.class));
                    break;
                default:
                    break;
            }
        } catch (KilnException badEvent) {
            // an event we cannot read does not stop the follow
        }
    }

    private void onProgress(Progress p) {
        if (p.totalSteps() <= 0) {
            return;
        }
        if (interactive) {
            if (bar == null) {
                bar = new ProgressBarBuilder()
                        .setTaskName("Train")
                        .setInitialMax(p.totalSteps())
                        .setStyle(ProgressBarStyle.COLORFUL_UNICODE_BLOCK)
                        .setUpdateIntervalMillis(200)
                        .build();
            }
            if (bar.getMax() != p.totalSteps()) {
                bar.maxHint(p.totalSteps());
            }
            bar.stepTo(p.step());
            bar.setExtraMessage(extra(p));
        } else {
            long pct = Math.round(p.fraction() * 100);
            long now = System.nanoTime();
            if (pct >= lastPct + 10 || p.step() >= p.totalSteps() || now - lastLineNanos > 15_000_000_000L) {
                out.println("  step " + p.step() + "/" + p.totalSteps() + " (" + pct + "%)  " + extra(p));
                out.flush();
                lastPct = pct;
                lastLineNanos = now;
            }
        }
    }

    static String extra(Progress p) {
        StringBuilder sb = new StringBuilder();
        if (p.totalEpochs() > 1) { // kept short: the bar shrinks to leave room for this message
            sb.append("epoch ").append(p.epoch()).append('/').append(p.totalEpochs()).append(", ");
        }
        sb.append(String.format(Locale.ROOT, "loss %.4f, %.0f samples/s", p.loss(), p.samplesPerSec()));
        return sb.toString();
    }

    private void onStatus(StatusEvent s) {
        if (s.isFinal()) {
            finalStatus = s;
        }
        if (s.status() == null || s.status().equals(status)) {
            return;
        }
        status = s.status();
        if (bar == null) {
            note(status + describeStatus(status));
        }
    }

    private void note(String line) {
        if (bar != null) {
            bar.setExtraMessage(line);
        } else {
            out.println("  " + line);
            out.flush();
        }
    }

    private static String describeStatus(String status) {
        if (JobStatus.PENDING.equals(status)) {
            return " (queued: waiting for a free worker)";
        }
        return "";
    }

    private void closeBar(boolean completed) {
        ProgressBar b = bar;
        if (b == null) {
            return;
        }
        bar = null;
        if (completed && b.getMax() > 0) {
            b.stepTo(b.getMax());
        }
        b.close();
    }

    private int summary(String id, JobView fin, String endStatus) {
        String st = fin != null ? fin.status() : (endStatus == null || endStatus.isBlank() ? status : endStatus);
        // The headline metric: DJL models report test accuracy; built-ins (xgboost) validation metrics.
        String label = "test accuracy";
        Double acc = null;
        for (String[] m : new String[][] {{"test_accuracy", "test accuracy"}, {"validation_accuracy", "val accuracy"},
                {"validation_rmse", "val rmse"}}) {
            Double v = fin != null ? fin.metric(m[0]) : null;
            if (v == null && finalStatus != null) {
                v = finalStatus.metric(m[0]);
            }
            if (v != null) {
                label = m[1];
                acc = v;
                break;
            }
        }
        String model = fin != null ? fin.modelUri() : null;
        if ((model == null || model.isBlank()) && finalStatus != null) {
            model = finalStatus.modelUri();
        }
        String reason = fin != null ? fin.failureReason() : null;
        if ((reason == null || reason.isBlank()) && finalStatus != null) {
            reason = finalStatus.failureReason();
        }
        out.println();
        out.println("Job " + id + " " + Fmt.dash(st));
        out.println("  " + String.format("%-13s", label) + "  " + Fmt.number(acc, 4));
        out.println("  model          " + Fmt.dash(model));
        String took = fin == null ? null : Fmt.duration(fin.startedAt(), fin.endedAt());
        if (took != null) {
            out.println("  training time  " + took);
        }
        if (reason != null && !reason.isBlank()) {
            out.println("  failure        " + reason);
        }
        out.flush();
        return JobStatus.COMPLETED.equals(st) ? ExitCodes.OK : ExitCodes.JOB_FAILED;
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new KilnException("interrupted", e);
        }
    }

    /** Whether to draw a progress bar / spinner: a console and not TERM=dumb. */
    static boolean interactive() {
        return System.console() != null && !"dumb".equals(System.getenv("TERM"));
    }
}
