package io.kiln.coordinator;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.util.HashMap;
import java.util.Map;

/**
 * Turns {@code kiln.journal} (h2 or postgres) into pekko-persistence-jdbc's shared database
 * settings, so that a deployment switches journals with one key rather than a slick block.
 */
public final class JournalSettings {
  private JournalSettings() {}

  /** The overlay to put in front of the loaded config; {@code config} must already be resolved. */
  public static Config overlay(Config config) {
    String kind = config.getString("kiln.journal");
    Map<String, Object> db = new HashMap<>();
    String profile;
    switch (kind) {
      case "h2" -> {
        profile = "slick.jdbc.H2Profile$";
        db.put("url", config.getString("kiln.h2.url"));
        db.put("user", "sa");
        db.put("password", "");
        db.put("driver", "org.h2.Driver");
      }
      case "postgres" -> {
        profile = "slick.jdbc.PostgresProfile$";
        db.put("url", config.getString("kiln.postgres.url"));
        db.put("user", config.getString("kiln.postgres.user"));
        db.put("password", config.getString("kiln.postgres.password"));
        db.put("driver", "org.postgresql.Driver");
      }
      default -> throw new IllegalArgumentException("kiln.journal must be h2 or postgres, not '" + kind + "'");
    }
    db.put("numThreads", 4);
    db.put("maxConnections", 4);
    db.put("minConnections", 1);
    db.put("connectionTimeout", 10_000);
    String prefix = "pekko-persistence-jdbc.shared-databases.kiln.";
    return ConfigFactory.empty()
        .withValue(prefix + "profile", ConfigValueFactory.fromAnyRef(profile))
        .withValue(prefix + "db", ConfigValueFactory.fromMap(db));
  }

  /** A description safe for logs (no password). */
  public static String describe(Config config) {
    String kind = config.getString("kiln.journal");
    return kind.equals("h2") ? "H2 " + config.getString("kiln.h2.url") : "PostgreSQL " + config.getString("kiln.postgres.url");
  }
}
