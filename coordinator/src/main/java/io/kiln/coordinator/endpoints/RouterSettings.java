package io.kiln.coordinator.endpoints;

import com.typesafe.config.Config;
import java.time.Duration;

/** {@code kiln.endpoints.router.*} (reference.conf): the data-plane listener and the connections to replicas. */
record RouterSettings(String host, int port, int ioThreads, int maxConnections, int maxOpenRequests, Duration connectTimeout,
                      Duration responseTimeout, Duration idleTimeout, int maxBody, int maxResponse) {

  static RouterSettings of(Config config) {
    Config c = config.getConfig("kiln.endpoints.router");
    return new RouterSettings(c.getString("host"), c.getInt("port"), c.getInt("io-threads"), c.getInt("max-connections"),
        c.getInt("max-open-requests"), c.getDuration("connect-timeout"), c.getDuration("response-timeout"),
        c.getDuration("idle-timeout"), Math.toIntExact(c.getBytes("max-body")), Math.toIntExact(c.getBytes("max-response")));
  }

  /** Settings for tests: the listener on 127.0.0.1, one event loop, short timeouts. */
  static RouterSettings local(Duration responseTimeout) {
    return new RouterSettings("127.0.0.1", 0, 1, 8, 64, Duration.ofSeconds(2), responseTimeout, Duration.ofSeconds(60),
        8 << 20, 64 << 20);
  }
}
