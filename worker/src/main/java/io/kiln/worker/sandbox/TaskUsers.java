package io.kiln.worker.sandbox;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Per-task uids from a configured range, so that a task cannot read another task's directory
 * (mode 700, owned by the other task's uid). A uid is leased by locking {@code <lock-dir>/<uid>}
 * ({@code fcntl} lock), which every worker on the host shares and the kernel releases when a worker
 * dies, so two running tasks never share a uid, even across worker processes.
 */
public final class TaskUsers {
  private TaskUsers() {}

  /** A leased uid (gid = uid); {@link #close()} returns it. */
  public record Lease(int uid, FileChannel channel, FileLock lock) implements AutoCloseable {
    @Override
    public void close() {
      try {
        lock.release();
        channel.close();
      } catch (IOException ignored) {
        // the lock goes with the channel
      }
    }
  }

  /** {@code "200000-200999"} as {first, last}; throws naming the setting when malformed. */
  public static int[] parseRange(String range) {
    String[] p = range.trim().split("-");
    try {
      int first = Integer.parseInt(p[0].trim());
      int last = Integer.parseInt(p[1].trim());
      if (p.length != 2 || first < 1000 || last < first) throw new NumberFormatException();
      return new int[] {first, last};
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("kiln.worker.sandbox.uid-range: '" + range + "' must be FIRST-LAST with "
          + "1000 <= FIRST <= LAST, e.g. 200000-200999 (uids no account on the host uses)");
    }
  }

  /** Leases the first free uid of the range. */
  public static Lease lease(String range, Path lockDir) throws IOException {
    int[] r = parseRange(range);
    if (!runningAsRoot()) {
      throw new IllegalStateException("kiln.worker.sandbox.uid-range is set but the worker does not run as root, so "
          + "it cannot start tasks as other users");
    }
    Files.createDirectories(lockDir);
    for (int uid = r[0]; uid <= r[1]; uid++) {
      FileChannel ch = FileChannel.open(lockDir.resolve(String.valueOf(uid)), StandardOpenOption.CREATE,
          StandardOpenOption.WRITE);
      try {
        FileLock lock = ch.tryLock();
        if (lock != null) return new Lease(uid, ch, lock);
      } catch (OverlappingFileLockException e) {
        // held by another task of this worker
      }
      ch.close();
    }
    throw new IOException("every uid of kiln.worker.sandbox.uid-range " + range + " is in use by a running task");
  }

  /** The real uid of this process, from /proc/self/status. */
  public static boolean runningAsRoot() {
    try {
      for (String l : Files.readAllLines(Path.of("/proc/self/status"), StandardCharsets.US_ASCII)) {
        if (l.startsWith("Uid:")) return l.split("\\s+")[1].equals("0");
      }
    } catch (IOException ignored) {
      // not Linux
    }
    return false;
  }
}
