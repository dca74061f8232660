package io.kiln.worker.sandbox;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Finds which cgroup hierarchy a worker can put tasks into, from {@code /proc/self/mountinfo} and
 * {@code /proc/self/cgroup}, and creates task cgroups there. Detection runs once per worker.
 */
public final class Cgroups {
  /** The v1 controllers Kiln limits. */
  static final List<String> V1_CONTROLLERS = List.of("memory", "cpu", "pids");

  /** What is available here: v2 mount (usable), v1 parents per controller, or neither. */
  public record Detected(String version, Path v2Parent, Map<String, Path> v1Parents, String why) {
    public boolean available() {
      return version != null;
    }
  }

  private static volatile Detected cached;

  private Cgroups() {}

  /** Detects once (the answer does not change while the worker runs) for these settings. */
  public static Detected detect(SandboxSettings s) {
    Detected d = cached;
    if (d == null || !d.why().startsWith(s.cgroups() + "|" + s.cgroupParent() + "|")) {
      d = detect(s.cgroups(), s.cgroupParent(), Path.of("/proc/self/mountinfo"), Path.of("/proc/self/cgroup"));
      cached = d;
    }
    return d;
  }

  static Detected detect(String mode, String parent, Path mountinfo, Path selfCgroup) {
    String key = mode + "|" + parent + "|";
    if (mode.equals("off")) return new Detected(null, null, Map.of(), key + "cgroups are off (kiln.worker.sandbox.cgroups)");
    List<String[]> mounts = mounts(mountinfo);
    Map<String, String> own = ownPaths(selfCgroup);
    if (mode.equals("auto") || mode.equals("v2")) {
      for (String[] m : mounts) {
        if (!m[0].equals("cgroup2")) continue;
        Path mount = Path.of(m[1]);
        if (CgroupV2.usable(mount)) {
          Path p = parent.isEmpty() ? mount.resolve("kiln") : Path.of(parent);
          return new Detected("v2", p, Map.of(), key + "cgroup v2 at " + mount);
        }
      }
      if (mode.equals("v2")) return new Detected(null, null, Map.of(), key + "no usable cgroup v2 hierarchy (memory, "
          + "cpu and pids controllers, writable) in /proc/self/mountinfo");
    }
    Map<String, Path> parents = new LinkedHashMap<>();
    for (String[] m : mounts) {
      if (!m[0].equals("cgroup")) continue;
      for (String opt : m[3].split(",")) {
        if (!V1_CONTROLLERS.contains(opt) || parents.containsKey(opt)) continue;
        Path mount = Path.of(m[1]);
        if (!Files.isWritable(mount)) continue;
        String rel = relative(own.getOrDefault(opt, "/"), m[2]);
        Path p = parent.isEmpty() ? mount.resolve(rel.substring(1)).resolve("kiln") : mount.resolve(parent.replaceFirst("^/+", ""));
        parents.put(opt, p);
      }
    }
    if (parents.containsKey("memory")) {
      return new Detected("v1", null, Map.copyOf(parents), key + "cgroup v1 hierarchies " + parents.keySet());
    }
    return new Detected(null, null, Map.of(), key + "no writable cgroup hierarchy with the memory controller");
  }

  /** Creates the task's cgroup under what {@link #detect} found. */
  public static TaskCgroup create(Detected d, String taskName, TaskLimits limits) throws IOException {
    if ("v2".equals(d.version())) return CgroupV2.create(d.v2Parent(), taskName, limits);
    if ("v1".equals(d.version())) return CgroupV1.create(d.v1Parents(), taskName, limits);
    throw new IllegalStateException("no cgroups here: " + d.why());
  }

  /** {fstype, mount point, root of the mount, super options} of each cgroup mount. */
  private static List<String[]> mounts(Path mountinfo) {
    try {
      return Files.readAllLines(mountinfo, StandardCharsets.UTF_8).stream().map(l -> {
        String[] f = l.split(" ");
        int dash = List.of(f).indexOf("-");
        if (dash < 0 || f.length < dash + 4) return null;
        return new String[] {f[dash + 1], unescape(f[4]), unescape(f[3]), f[dash + 3]};
      }).filter(a -> a != null && (a[0].equals("cgroup") || a[0].equals("cgroup2"))).toList();
    } catch (IOException e) {
      return List.of();
    }
  }

  /** Controller (or "" for v2) to the worker's own cgroup path, from /proc/self/cgroup. */
  private static Map<String, String> ownPaths(Path selfCgroup) {
    Map<String, String> out = new LinkedHashMap<>();
    try {
      for (String l : Files.readAllLines(selfCgroup, StandardCharsets.UTF_8)) {
        String[] f = l.split(":", 3);
        if (f.length < 3) continue;
        for (String c : f[1].split(",")) out.put(c, f[2]);
      }
    } catch (IOException ignored) {
      // no /proc: nothing
    }
    return out;
  }

  /** The worker's cgroup relative to a mount whose root is {@code mountRoot} (always starting with '/'). */
  private static String relative(String own, String mountRoot) {
    if (mountRoot.equals("/") || !own.startsWith(mountRoot)) return own.startsWith("/") ? own : "/" + own;
    String r = own.substring(mountRoot.length());
    return r.startsWith("/") ? r : "/" + r;
  }

  private static String unescape(String s) {
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\");
  }
}
