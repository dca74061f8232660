package io.kiln.worker.algorithms.xgboost;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;

/**
 * Loads XGBoost's native library once per JVM and turns a failure into a message that says what to
 * do. xgboost4j's {@code libxgboost4j.so} needs the system's GNU OpenMP runtime ({@code libgomp.so.1},
 * Debian package {@code libgomp1}); without it the library does not load and xgboost4j only logs
 * the reason, so after a failure this class looks for the file itself.
 */
public final class XGBoostNative {
  private static String failure;
  private static boolean loaded;

  private XGBoostNative() {}

  /** Loads the library (once); throws {@link IllegalStateException} with the cause and the fix when it cannot. */
  public static synchronized void ensureLoaded() {
    if (loaded) return;
    if (failure != null) throw new IllegalStateException(failure);
    try {
      Class.forName("ml.dmlc.xgboost4j.java.XGBoostJNI", true, XGBoostNative.class.getClassLoader());
      ml.dmlc.xgboost4j.java.XGBoostJNI.XGBGetLastError();
      loaded = true;
    } catch (Throwable t) {
      failure = describe(t, findLibgomp());
      throw new IllegalStateException(failure, t);
    }
  }

  /**
   * The message for a load failure {@code t}; {@code libgomp} is where libgomp.so.1 was found (null:
   * nowhere in the usual library folders).
   */
  static String describe(Throwable t, Path libgomp) {
    StringBuilder causes = new StringBuilder();
    for (Throwable c = t; c != null && c.getCause() != c; c = c.getCause()) {
      String m = c.getMessage();
      if (m != null && !m.isBlank() && causes.indexOf(m) < 0) {
        if (causes.length() > 0) causes.append(": ");
        causes.append(m);
      }
      if (c.getCause() == null) break;
    }
    String detail = causes.length() > 0 ? causes.toString() : t.getClass().getSimpleName();
    if (libgomp == null || detail.contains("libgomp")) {
      return "XGBoost's native library cannot be loaded: it needs libgomp.so.1 (the GNU OpenMP runtime), which was "
          + "not found on this worker; install it (Debian/Ubuntu: apt-get install libgomp1; RHEL/Fedora: dnf install "
          + "libgomp) and restart the worker (" + detail + ")";
    }
    return "XGBoost's native library cannot be loaded (libgomp.so.1 is present at " + libgomp + "): " + detail;
  }

  /** libgomp.so.1 in LD_LIBRARY_PATH or the usual library folders, or null. */
  static Path findLibgomp() {
    Set<String> dirs = new LinkedHashSet<>();
    String ld = System.getenv("LD_LIBRARY_PATH");
    if (ld != null) for (String d : ld.split(":")) if (!d.isBlank()) dirs.add(d);
    dirs.addAll(List.of("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"));
    for (String d : dirs) {
      Path p = Path.of(d, "libgomp.so.1");
      if (Files.exists(p)) return p;
    }
    return null;
  }

  /** The xgboost4j version from its jar (e.g. {@code 3.4.0}), or "unknown". */
  public static String version() {
    try (InputStream in = XGBoostNative.class.getResourceAsStream("/xgboost4j-version.properties")) {
      if (in == null) return "unknown";
      Properties p = new Properties();
      p.load(in);
      List<String> values = new ArrayList<>();
      for (String k : p.stringPropertyNames()) values.add(p.getProperty(k));
      return values.isEmpty() ? "unknown" : values.get(0).trim();
    } catch (Exception e) {
      return "unknown";
    }
  }
}
