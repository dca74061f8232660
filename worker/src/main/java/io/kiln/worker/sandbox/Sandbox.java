package io.kiln.worker.sandbox;

import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * The process sandbox of one task (docs/script-mode.md, "Limits and isolation"): its cgroup, its uid,
 * and the command prefix that puts the task's first process into both before the user's code runs.
 *
 * <p>The prefix is, from the outside in:
 * <ol>
 *   <li>{@code setsid}: the task leads its own session and process group;
 *   <li>{@code sh -c JOIN}: writes its pid into the task's {@code cgroup.procs} files (as root,
 *       before anything else), then execs;
 *   <li>{@code setpriv --pdeathsig HUP [--reuid U --regid U --clear-groups]}: the process gets SIGHUP
 *       when the worker dies (even by SIGKILL) and drops to the task's uid. Strictly, the kernel sends
 *       it when the <em>thread</em> that started the process ends: the caller must start the process
 *       from a thread that waits for it (the task thread does), never from a short-lived one;
 *   <li>{@code sh -c SUPERVISE}: starts the user's command and waits for it; on SIGHUP (the worker
 *       died) it SIGKILLs its whole process group, so nothing the script started outlives the worker;
 *   <li>{@code prlimit}: address space (only without a memory cgroup), file size, process count
 *       (only with a task uid and no pids cgroup).
 * </ol>
 */
public final class Sandbox implements AutoCloseable {
  private static final Path SETSID = firstExisting("/usr/bin/setsid", "/bin/setsid");
  private static final Path SETPRIV = firstExisting("/usr/bin/setpriv", "/bin/setpriv");
  private static final Path PRLIMIT = firstExisting("/usr/bin/prlimit", "/bin/prlimit");
  private static final String SH = "/bin/sh";
  /** Exit code of JOIN when a cgroup cannot be joined. */
  public static final int JOIN_FAILED = 125;
  static final String JOIN = "while [ \"$1\" != \"--\" ]; do echo $$ > \"$1\" || { echo \"kiln: cannot join the "
      + "task's cgroup $1\" >&2; exit 125; }; shift; done; shift; exec \"$@\"";
  /**
   * TERM is caught (not ignored, which children would inherit) so that only the script decides how
   * to stop; {@code wait}'s stderr is silenced so the shell's "Killed" notice does not pose as the script's output.
   */
  static final String SUPERVISE = "trap 'kill -KILL 0' HUP; trap ':' TERM INT; \"$@\" & c=$!; "
      + "while :; do wait $c 2>/dev/null; s=$?; kill -0 $c 2>/dev/null || exit $s; done";

  private final TaskCgroup cgroup;
  private final TaskUsers.Lease user;
  private final TaskLimits limits;
  private final boolean pdeathsig;

  private Sandbox(TaskCgroup cgroup, TaskUsers.Lease user, TaskLimits limits, boolean pdeathsig) {
    this.cgroup = cgroup;
    this.user = user;
    this.limits = limits;
    this.pdeathsig = pdeathsig;
  }

  /**
   * Sets up the sandbox of task {@code taskName}. {@code warn} receives what cannot be enforced here
   * (no cgroups, no setpriv). Throws when a configured isolation cannot be had (uid range without
   * root, a cgroup that cannot be created while cgroups were asked for explicitly).
   */
  public static Sandbox open(SandboxSettings settings, String taskName, TaskLimits limits, Consumer<String> warn)
      throws IOException {
    TaskCgroup cg = null;
    Cgroups.Detected d = Cgroups.detect(settings);
    if (d.available()) {
      try {
        cg = Cgroups.create(d, "task-" + taskName, limits);
      } catch (IOException e) {
        if (!settings.cgroups().equals("auto")) throw e;
        warn.accept("cgroups not used (" + e.getMessage() + ")");
      }
    } else if (!settings.cgroups().equals("off") && !settings.cgroups().equals("auto")) {
      throw new IOException("kiln.worker.sandbox.cgroups=" + settings.cgroups() + " but " + d.why().replaceFirst("^[^|]*\\|[^|]*\\|", ""));
    }
    TaskUsers.Lease lease = null;
    try {
      if (!settings.uidRange().isBlank()) {
        if (SETPRIV == null) throw new IOException("kiln.worker.sandbox.uid-range needs setpriv (util-linux)");
        lease = TaskUsers.lease(settings.uidRange(), settings.uidLockDir());
      }
    } catch (IOException | RuntimeException e) {
      if (cg != null) cg.close();
      throw e;
    }
    boolean pdeath = settings.pdeathsig() && SETPRIV != null;
    Sandbox s = new Sandbox(cg, lease, limits, pdeath);
    if (cg == null) {
      String missing = d.available() ? "" : " (" + d.why().replaceFirst("^[^|]*\\|[^|]*\\|", "") + ")";
      if (limits.cpus() > 0) warn.accept("CPU quota not enforced: no cgroup" + missing);
      if (limits.memoryBytes() > 0) {
        warn.accept("no memory cgroup" + missing + ": memory is limited per process as virtual address space "
            + "(prlimit --as), not resident memory");
      }
    }
    if (settings.pdeathsig() && SETPRIV == null) {
      warn.accept("setpriv is not installed: the script is not killed if the worker process dies");
    }
    return s;
  }

  /** The uid the task runs as, if it has its own. */
  public Optional<Integer> uid() {
    return user == null ? Optional.empty() : Optional.of(user.uid());
  }

  public Optional<TaskCgroup> cgroup() {
    return Optional.ofNullable(cgroup);
  }

  /** A line for the task's log saying what is enforced. */
  public String describe() {
    List<String> parts = new ArrayList<>();
    parts.add(cgroup != null ? cgroup.describe() : "no cgroup");
    if (cgroup == null && limits.memoryBytes() > 0 && PRLIMIT != null) {
      parts.add(String.format(Locale.ROOT, "address space %d MB per process (prlimit --as)", limits.memoryBytes() >> 20));
    }
    if (limits.fileBytes() > 0 && PRLIMIT != null) {
      parts.add(String.format(Locale.ROOT, "files up to %d MB (prlimit --fsize)", limits.fileBytes() >> 20));
    }
    parts.add(user != null ? "uid/gid " + user.uid() : "the worker's uid");
    parts.add(pdeathsig ? "killed with the worker (pdeathsig)" : "not tied to the worker's life");
    return "sandbox: " + String.join("; ", parts);
  }

  /** The command prefix (see the class comment); the user's command follows it. */
  public List<String> prefix() {
    List<String> cmd = new ArrayList<>();
    if (SETSID != null) cmd.add(SETSID.toString());
    cmd.addAll(List.of(SH, "-c", JOIN, "kiln-task"));
    if (cgroup != null) cgroup.procsFiles().forEach(p -> cmd.add(p.toString()));
    cmd.add("--");
    if (pdeathsig || user != null) {
      cmd.add(SETPRIV.toString());
      if (pdeathsig) cmd.addAll(List.of("--pdeathsig", "HUP"));
      if (user != null) {
        cmd.addAll(List.of("--reuid", String.valueOf(user.uid()), "--regid", String.valueOf(user.uid()),
            "--clear-groups"));
      }
      cmd.add("--");
    }
    if (pdeathsig) cmd.addAll(List.of(SH, "-c", SUPERVISE, "kiln-supervisor"));
    if (PRLIMIT != null) {
      List<String> lim = new ArrayList<>();
      if (cgroup == null && limits.memoryBytes() > 0) lim.add("--as=" + limits.memoryBytes());
      if (limits.fileBytes() > 0) lim.add("--fsize=" + limits.fileBytes());
      if (cgroup == null && user != null && limits.pids() > 0) lim.add("--nproc=" + limits.pids());
      if (!lim.isEmpty()) {
        cmd.add(PRLIMIT.toString());
        cmd.addAll(lim);
        cmd.add("--");
      }
    }
    return cmd;
  }

  /** With a task uid: HOME and TMPDIR inside the task directory (the worker's own are not readable). */
  public Map<String, String> environment(Path taskDir) throws IOException {
    Map<String, String> env = new LinkedHashMap<>();
    if (user == null) return env;
    Path home = Files.createDirectories(taskDir.resolve("home"));
    Path tmp = Files.createDirectories(taskDir.resolve("tmp"));
    env.put("HOME", home.toString());
    env.put("TMPDIR", tmp.toString());
    env.put("USER", "kiln-" + user.uid());
    env.put("LOGNAME", "kiln-" + user.uid());
    return env;
  }

  /**
   * With a task uid: hands {@code dir} (the task directory, already mode 700) and everything in it to
   * that uid, links themselves but never what they point to; checks that the uid can reach it.
   */
  public void handOver(Path dir) throws IOException {
    if (user == null) return;
    for (Path p = dir.toAbsolutePath().getParent(); p != null; p = p.getParent()) {
      if (!Files.getPosixFilePermissions(p).contains(PosixFilePermission.OTHERS_EXECUTE)) {
        throw new IOException("tasks run as their own uid but " + p + " is not searchable by other users (o+x), so "
            + "the task cannot reach " + dir + "; chmod o+x it or point kiln.data-dir elsewhere");
      }
    }
    int uid = user.uid();
    Files.walkFileTree(dir, new SimpleFileVisitor<>() {
      @Override
      public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes a) throws IOException {
        own(d, uid);
        return FileVisitResult.CONTINUE;
      }

      @Override
      public FileVisitResult visitFile(Path f, BasicFileAttributes a) throws IOException {
        own(f, uid);
        return FileVisitResult.CONTINUE;
      }
    });
  }

  private static void own(Path p, int uid) throws IOException {
    Files.setAttribute(p, "unix:uid", uid, LinkOption.NOFOLLOW_LINKS);
    Files.setAttribute(p, "unix:gid", uid, LinkOption.NOFOLLOW_LINKS);
  }

  /** A failure reason when the sandbox explains an exit (the memory limit), else null. */
  public String explain(int exit) {
    if (cgroup != null && cgroup.oomKilled()) {
      return String.format(Locale.ROOT, "out of memory: the task reached its memory limit of %d MB "
          + "(resources.memoryMbPerWorker) and the kernel killed it (exit code %d)", limits.memoryBytes() >> 20, exit);
    }
    if (exit == JOIN_FAILED) return null; // the message is in stderr
    if (exit == 128 + 25 && limits.fileBytes() > 0) {
      return String.format(Locale.ROOT, "output too large: a file reached the limit of %d MB (SIGXFSZ; "
          + "kiln_max_output_mb / kiln.worker.script.max-output)", limits.fileBytes() >> 20);
    }
    return null;
  }

  /** Kills whatever is left in the cgroup, removes it and returns the uid. */
  @Override
  public void close() {
    if (cgroup != null) cgroup.close();
    if (user != null) user.close();
  }


  private static Path firstExisting(String... candidates) {
    for (String c : candidates) {
      Path p = Path.of(c);
      if (Files.isExecutable(p)) return p;
    }
    return null;
  }
}
