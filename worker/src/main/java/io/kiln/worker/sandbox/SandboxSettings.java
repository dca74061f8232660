package io.kiln.worker.sandbox;

import com.typesafe.config.Config;
import java.nio.file.Path;

/**
 * How a worker isolates the processes of user code (scripts, processing jobs). Keys, as system
 * properties or worker config:
 *
 * <ul>
 *   <li>{@code kiln.worker.sandbox.cgroups}: {@code auto} (default: cgroup v2 where its memory, cpu
 *       and pids controllers are available, else cgroup v1, else none), {@code v2}, {@code v1} or
 *       {@code off};
 *   <li>{@code kiln.worker.sandbox.cgroup-parent}: the cgroup (a path under the cgroup mount, e.g.
 *       {@code /sys/fs/cgroup/kiln.slice}) under which task cgroups are created; default: v2
 *       {@code <mount>/kiln}, v1 {@code <mount>/<the worker's own cgroup>/kiln} per controller;
 *   <li>{@code kiln.worker.sandbox.uid-range}: {@code FIRST-LAST} (e.g. {@code 200000-200999}): run
 *       each task as its own uid/gid from the range (the worker must run as root); empty (default):
 *       tasks run as the worker's user;
 *   <li>{@code kiln.worker.sandbox.uid-lock-dir}: where uid leases are locked, shared by every
 *       worker of the host (default {@code /tmp/kiln-uid-locks});
 *   <li>{@code kiln.worker.sandbox.pdeathsig}: {@code true} (default): the script's process tree is
 *       killed when the worker process dies (needs {@code setpriv}).
 * </ul>
 */
public record SandboxSettings(String cgroups, String cgroupParent, String uidRange, Path uidLockDir,
    boolean pdeathsig) {

  public static SandboxSettings defaults() {
    return new SandboxSettings("auto", "", "", Path.of("/tmp/kiln-uid-locks"), true);
  }

  public static SandboxSettings fromConfig(Config c) {
    SandboxSettings d = defaults();
    return new SandboxSettings(
        str(c, "kiln.worker.sandbox.cgroups", d.cgroups()),
        str(c, "kiln.worker.sandbox.cgroup-parent", d.cgroupParent()),
        str(c, "kiln.worker.sandbox.uid-range", d.uidRange()),
        Path.of(str(c, "kiln.worker.sandbox.uid-lock-dir", d.uidLockDir().toString())),
        c.hasPath("kiln.worker.sandbox.pdeathsig") ? c.getBoolean("kiln.worker.sandbox.pdeathsig") : d.pdeathsig());
  }

  public SandboxSettings withCgroups(String mode) {
    return new SandboxSettings(mode, cgroupParent, uidRange, uidLockDir, pdeathsig);
  }

  public SandboxSettings withUidRange(String range, Path lockDir) {
    return new SandboxSettings(cgroups, cgroupParent, range, lockDir, pdeathsig);
  }

  private static String str(Config c, String key, String def) {
    return c.hasPath(key) ? c.getString(key).trim() : def;
  }
}
