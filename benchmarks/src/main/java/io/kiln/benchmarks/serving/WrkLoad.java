package io.kiln.benchmarks.serving;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Load from a second process with Debian's {@code wrk}: a C load generator with far less overhead
 * per request than a JVM HTTP client on the same 2 cores. wrk is closed-loop; a Lua {@code delay()}
 * paces each connection so that the total comes near the asked rate (the achieved rate is reported).
 */
final class WrkLoad {
  /** Percentiles in ms and the achieved rate. */
  record Result(double p50, double p90, double p99, double max, double rate, long requests, long errors) {}

  static boolean available() {
    try {
      return new ProcessBuilder("wrk", "--version").redirectErrorStream(true).start().waitFor() <= 1;
    } catch (Exception e) {
      return false;
    }
  }

  /**
   * Runs wrk for {@code seconds} against {@code url} with {@code body}. Each connection waits 2 ms
   * after its previous answer (a request here takes ~0.5 ms, so ~2.8 ms a cycle): ~1,000 req/s
   * comes from 3 connections.
   */
  static Result run(String url, String token, String body, int rate, int seconds) throws Exception {
    Path dir = Files.createTempDirectory("kiln-wrk");
    Path bodyFile = dir.resolve("body.json");
    Files.writeString(bodyFile, body);
    int connections = Math.max(1, (int) Math.ceil(rate * 2.8 / 1000));
    Path script = dir.resolve("post.lua");
    Files.writeString(script, String.join("\n",
        "wrk.method = \"POST\"",
        "local f = io.open(\"" + bodyFile + "\", \"r\"); wrk.body = f:read(\"*a\"); f:close()",
        "wrk.headers[\"Content-Type\"] = \"application/json\"",
        "wrk.headers[\"Authorization\"] = \"Bearer " + token + "\"",
        "function delay() return 2 end",
        ""));
    Process p = new ProcessBuilder("wrk", "-t1", "-c" + connections, "-d" + seconds + "s", "--latency", "-s",
        script.toString(), url).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (p.waitFor() != 0) throw new IllegalStateException("wrk failed: " + out);
    return new Result(percentile(out, "50%"), percentile(out, "90%"), percentile(out, "99%"),
        ms(find(out, "Latency\\s+\\S+\\s+\\S+\\s+(\\S+)")), Double.parseDouble(find(out, "Requests/sec:\\s+([0-9.]+)")),
        Long.parseLong(find(out, "(\\d+) requests in")), errors(out));
  }

  private static long errors(String out) {
    long n = 0;
    Matcher m = Pattern.compile("Non-2xx or 3xx responses: (\\d+)").matcher(out);
    if (m.find()) n += Long.parseLong(m.group(1));
    m = Pattern.compile("Socket errors: connect (\\d+), read (\\d+), write (\\d+), timeout (\\d+)").matcher(out);
    if (m.find()) for (int g = 1; g <= 4; g++) n += Long.parseLong(m.group(g));
    return n;
  }

  private static double percentile(String out, String p) {
    return ms(find(out, "\\s" + Pattern.quote(p) + "\\s+(\\S+)"));
  }

  private static String find(String out, String regex) {
    Matcher m = Pattern.compile(regex).matcher(out);
    if (!m.find()) throw new IllegalStateException("no '" + regex + "' in wrk's output:\n" + out);
    return m.group(1);
  }

  /** wrk prints 384.00us, 5.71ms, 1.02s. */
  private static double ms(String v) {
    String s = v.toLowerCase(Locale.ROOT);
    if (s.endsWith("us")) return Double.parseDouble(s.substring(0, s.length() - 2)) / 1000;
    if (s.endsWith("ms")) return Double.parseDouble(s.substring(0, s.length() - 2));
    if (s.endsWith("m")) return Double.parseDouble(s.substring(0, s.length() - 1)) * 60_000;
    if (s.endsWith("s")) return Double.parseDouble(s.substring(0, s.length() - 1)) * 1000;
    return Double.parseDouble(s);
  }
}
