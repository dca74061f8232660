package io.kiln.deploy.server;

import java.time.Duration;

/**
 * How a {@link ModelServer} runs. {@code idleTimeout} null: models stay loaded; otherwise a model
 * unused that long is unloaded (serverless). {@code capture} null: no data capture.
 */
public record ServerOptions(String host, int port, String token, int maxConcurrency, Duration idleTimeout,
    long memoryBudgetBytes, int maxModels, DataCapture capture) {
  public ServerOptions {
    if (token == null || token.isBlank()) throw new IllegalArgumentException("a bearer token is required");
    if (maxConcurrency < 1) throw new IllegalArgumentException("max concurrency must be at least 1: " + maxConcurrency);
    if (memoryBudgetBytes < 1 || maxModels < 1) throw new IllegalArgumentException("memory budget and max models must be positive");
    if (idleTimeout != null && (idleTimeout.isNegative() || idleTimeout.isZero())) {
      throw new IllegalArgumentException("idle timeout must be positive: " + idleTimeout);
    }
  }

  public static ServerOptions defaults(String token) {
    return new ServerOptions("127.0.0.1", 0, token, 64, null, 2L << 30, 10_000, null);
  }

  public ServerOptions withPort(int p) {
    return new ServerOptions(host, p, token, maxConcurrency, idleTimeout, memoryBudgetBytes, maxModels, capture);
  }

  public ServerOptions withMaxConcurrency(int c) {
    return new ServerOptions(host, port, token, c, idleTimeout, memoryBudgetBytes, maxModels, capture);
  }

  public ServerOptions withIdleTimeout(Duration d) {
    return new ServerOptions(host, port, token, maxConcurrency, d, memoryBudgetBytes, maxModels, capture);
  }

  public ServerOptions withBudget(long bytes, int models) {
    return new ServerOptions(host, port, token, maxConcurrency, idleTimeout, bytes, models, capture);
  }

  public ServerOptions withCapture(DataCapture c) {
    return new ServerOptions(host, port, token, maxConcurrency, idleTimeout, memoryBudgetBytes, maxModels, c);
  }
}
