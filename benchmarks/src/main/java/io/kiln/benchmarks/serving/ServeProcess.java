package io.kiln.benchmarks.serving;

import io.kiln.cli.local.LocalCluster;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A ServeMain JVM started from the built deploy module (as {@code kiln serve} does), on a free port. */
final class ServeProcess implements AutoCloseable {
  static final String TOKEN = "bench-token";
  static final HttpClient CLIENT = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
      .connectTimeout(Duration.ofSeconds(5)).build();
  private static final Pattern LISTEN = Pattern.compile("listening on http://[^:]+:(\\d+)");
  final Process process;
  final int port;
  final Path log;

  ServeProcess(Path repo, Path log, String... args) throws Exception {
    this.log = log;
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx1g", "-DDJL_CACHE_DIR=" + repo.resolve(".cache/djl"), "-Dai.djl.offline=true",
        "-cp", LocalCluster.classpath(repo, "deploy"), "io.kiln.deploy.ServeMain", "--port", "0"));
    cmd.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
    pb.environment().put("KILN_TOKEN", TOKEN);
    process = pb.start();
    long deadline = System.nanoTime() + 60_000_000_000L;
    while (true) {
      Matcher m = LISTEN.matcher(Files.exists(log) ? Files.readString(log) : "");
      if (m.find()) {
        port = Integer.parseInt(m.group(1));
        break;
      }
      if (!process.isAlive() || System.nanoTime() > deadline) {
        process.destroyForcibly();
        throw new IOException("ServeMain did not start; its log " + log + ":\n" + Files.readString(log));
      }
      Thread.sleep(50);
    }
  }

  HttpRequest.Builder request(String path) {
    return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(60))
        .header("Authorization", "Bearer " + TOKEN);
  }

  HttpResponse<String> post(String path, String contentType, String body, String... headers) throws Exception {
    HttpRequest.Builder b = request(path).header("Content-Type", contentType).POST(HttpRequest.BodyPublishers.ofString(body));
    for (int i = 0; i + 1 < headers.length; i += 2) b.header(headers[i], headers[i + 1]);
    return CLIENT.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }

  String get(String path) throws Exception {
    return CLIENT.send(request(path).GET().build(), HttpResponse.BodyHandlers.ofString()).body();
  }

  @Override
  public void close() throws Exception {
    process.destroy();
    if (!process.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) process.destroyForcibly();
  }
}
