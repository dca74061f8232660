package io.kiln.deploy;

import io.kiln.deploy.server.DataCapture;
import io.kiln.deploy.server.ModelServer;
import io.kiln.deploy.server.ModelSource;
import io.kiln.deploy.server.ServerOptions;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;

/**
 * A serving process: one {@link ModelServer} for a model folder or a multi-model prefix, so an
 * endpoint is its own JVM. Prints {@code kiln-serve: listening on http://HOST:PORT} once it accepts
 * requests (launchers wait for that line; with {@code --preload true} only once the single model
 * loaded, else it exits 3 with the load error); stops on SIGTERM. Exit 2: bad arguments; 3: cannot start.
 *
 * <pre>
 * java -cp ... io.kiln.deploy.ServeMain (--model URI | --multi-model PREFIX) [--name model] [--port 8080]
 *   [--host 127.0.0.1] [--token-file FILE] [--idle-timeout 30s] [--max-concurrency 64]
 *   [--memory-budget-mb 2048] [--max-models 10000] [--capture-uri URI --capture-percent 10] [--preload true]
 * </pre>
 * The token: {@code KILN_TOKEN}, else {@code --token-file}, else {@code <kiln.data-dir or ~/.kiln>/token}.
 */
public final class ServeMain {
  private static final Set<String> OPTS = Set.of("--model", "--multi-model", "--name", "--port", "--host", "--token-file",
      "--idle-timeout", "--max-concurrency", "--memory-budget-mb", "--max-models", "--capture-uri", "--capture-percent", "--preload");

  private ServeMain() {}

  public static void main(String[] args) {
    Map<String, String> a;
    ServerOptions opts;
    ModelSource source;
    try {
      a = parse(args);
      if (a.containsKey("--model") == a.containsKey("--multi-model")) {
        throw new IllegalArgumentException("give exactly one of --model URI or --multi-model PREFIX");
      }
      source = a.containsKey("--model")
          ? ModelSource.single(a.getOrDefault("--name", "model"), uri(a.get("--model")))
          : ModelSource.prefix(uri(a.get("--multi-model")));
      opts = options(a);
    } catch (RuntimeException | java.io.IOException e) {
      System.err.println("kiln-serve: " + e.getMessage());
      System.exit(2);
      return;
    }
    try {
      ModelServer server = ModelServer.start(source, opts);
      if (Boolean.parseBoolean(a.getOrDefault("--preload", "false")) && source.defaultModel() != null) {
        // Load before announcing readiness, so a launcher learns of a corrupt model at once.
        try (var lease = server.cache().acquire(source.defaultModel())) {
          lease.predictor();
        } catch (Exception e) {
          server.close();
          System.err.println("kiln-serve: cannot start: " + e.getMessage());
          System.exit(3);
          return;
        }
      }
      CountDownLatch stop = new CountDownLatch(1);
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        server.close();
        stop.countDown();
      }));
      System.out.println("kiln-serve: listening on http://" + opts.host() + ":" + server.port());
      System.out.flush();
      stop.await();
    } catch (Exception e) {
      System.err.println("kiln-serve: cannot start: " + e);
      System.exit(3);
    }
  }

  static ServerOptions options(Map<String, String> a) throws java.io.IOException {
    ServerOptions o = ServerOptions.defaults(token(a.get("--token-file")));
    o = new ServerOptions(a.getOrDefault("--host", "127.0.0.1"), Integer.parseInt(a.getOrDefault("--port", "8080")),
        o.token(), Integer.parseInt(a.getOrDefault("--max-concurrency", "64")),
        a.containsKey("--idle-timeout") ? duration(a.get("--idle-timeout")) : null,
        Long.parseLong(a.getOrDefault("--memory-budget-mb", "2048")) << 20,
        Integer.parseInt(a.getOrDefault("--max-models", "10000")),
        a.containsKey("--capture-uri")
            ? new DataCapture(uri(a.get("--capture-uri")), Double.parseDouble(a.getOrDefault("--capture-percent", "100")))
            : null);
    return o;
  }

  /** {@code 30s}, {@code 500ms}, {@code 5m}, or plain seconds. */
  public static Duration duration(String s) {
    try {
      if (s.endsWith("ms")) return Duration.ofMillis(Long.parseLong(s.substring(0, s.length() - 2)));
      if (s.endsWith("s")) return Duration.ofMillis((long) (Double.parseDouble(s.substring(0, s.length() - 1)) * 1000));
      if (s.endsWith("m")) return Duration.ofMinutes(Long.parseLong(s.substring(0, s.length() - 1)));
      return Duration.ofMillis((long) (Double.parseDouble(s) * 1000));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("invalid duration '" + s + "' (e.g. 30s, 500ms, 5m)");
    }
  }

  private static String token(String file) throws java.io.IOException {
    String env = System.getenv("KILN_TOKEN");
    if (env != null && !env.isBlank()) return env.trim();
    Path p = file != null ? Path.of(file)
        : Path.of(System.getProperty("kiln.data-dir", System.getProperty("user.home") + "/.kiln")).resolve("token");
    if (!Files.isRegularFile(p)) {
      throw new IllegalArgumentException("no API token: set KILN_TOKEN, --token-file, or create " + p);
    }
    return Files.readString(p).trim();
  }

  private static URI uri(String s) {
    return s.contains(":") ? URI.create(s) : Path.of(s).toAbsolutePath().toUri();
  }

  private static Map<String, String> parse(String[] args) {
    Map<String, String> m = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      String k = args[i];
      String v = null;
      int eq = k.indexOf('=');
      if (eq > 0) {
        v = k.substring(eq + 1);
        k = k.substring(0, eq);
      }
      if (!OPTS.contains(k)) throw new IllegalArgumentException("unknown option '" + k + "' (options: " + OPTS + ")");
      if (v == null) {
        if (i + 1 >= args.length) throw new IllegalArgumentException(k + " needs a value");
        v = args[++i];
      }
      m.put(k, v);
    }
    return m;
  }
}
