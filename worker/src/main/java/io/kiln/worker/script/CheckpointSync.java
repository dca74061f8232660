package io.kiln.worker.script;

import io.kiln.artifacts.ArtifactStore;
import io.kiln.protocol.proto.TaskCheckpoint;
import io.kiln.worker.task.TaskEvents;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.LongSupplier;
import java.util.stream.Stream;

/**
 * Copies the task's local {@code checkpoints/} to {@code <job folder>/checkpoints/} while the
 * script runs (SageMaker syncs {@code /opt/ml/checkpoints} continuously), so that a restart after a
 * worker crash finds recent checkpoints. A file is uploaded once it has stayed the same (size and
 * modification time) across two scans, so files still being written are not copied half-way; a file
 * rewritten at every scan is uploaded anyway after {@value #MAX_DEFERRALS} scans (a copy taken while
 * the script writes it may be partial: the next round and the final one replace it; scripts that
 * write a temporary file and rename it never expose a partial file). The final sync after the script
 * ends uploads everything that changed. Each upload is atomic in the
 * store. After a round that uploaded something, the job is told (a {@link TaskCheckpoint} with the
 * folder), so that a restarted job resumes from it.
 */
final class CheckpointSync {
  private record Stamp(long size, long mtime) {}

  private final Path local;
  private final URI remote;
  private final TaskEvents events;
  private final LongSupplier step;
  private final Map<String, Stamp> uploaded = new HashMap<>();
  private final Map<String, Stamp> seen = new HashMap<>();
  private final java.util.concurrent.atomic.AtomicBoolean running = new java.util.concurrent.atomic.AtomicBoolean();
  /** How many scans in a row a file was held back because it kept changing. */
  private final Map<String, Integer> deferred = new HashMap<>();
  static final int MAX_DEFERRALS = 3;

  /** {@code step}: the script's latest {@code step} metric (0 if none), recorded with the checkpoint. */
  CheckpointSync(Path local, URI remote, TaskEvents events, LongSupplier step) {
    this.local = local;
    this.remote = remote;
    this.events = events;
    this.step = step;
  }

  /** Marks files restored from the store as uploaded already. */
  synchronized void restored() {
    scan().forEach(uploaded::put);
  }

  /**
   * Starts a round on a background thread unless one is still running, so that a large upload never
   * delays the script's stop, run-time and output checks.
   */
  void syncInBackground() {
    if (!running.compareAndSet(false, true)) return;
    Thread t = new Thread(() -> {
      try {
        sync(false);
      } catch (RuntimeException e) {
        events.warn("checkpoint sync failed: " + e);
      } finally {
        running.set(false);
      }
    }, "kiln-checkpoint-sync");
    t.setDaemon(true);
    t.start();
  }

  /**
   * One round: uploads stable changed files ({@code all}: every changed file); returns how many.
   * Rounds never overlap (the final one waits for a background one).
   */
  synchronized int sync(boolean all) {
    Map<String, Stamp> now = scan();
    int n = 0;
    long bytes = 0;
    ArtifactStore store = ArtifactStore.forRoot(remote);
    for (Map.Entry<String, Stamp> e : now.entrySet()) {
      String rel = e.getKey();
      Stamp s = e.getValue();
      if (s.equals(uploaded.get(rel))) continue;
      if (!all && !s.equals(seen.get(rel)) && deferred.merge(rel, 1, Integer::sum) < MAX_DEFERRALS) {
        continue; // changed since the last scan: maybe still being written
      }
      deferred.remove(rel);
      try {
        store.upload(local.resolve(rel), remote.resolve(rel.replace(java.io.File.separatorChar, '/')));
        uploaded.put(rel, s);
        n++;
        bytes += s.size();
      } catch (IOException | IllegalArgumentException ex) {
        events.warn("cannot upload checkpoint file " + rel + ": " + ex.getMessage());
      }
    }
    seen.clear();
    seen.putAll(now);
    if (n > 0) {
      events.info(String.format(Locale.ROOT, "checkpoints: %d file(s), %.1f kB uploaded to %s", n, bytes / 1e3, remote));
      events.checkpoint(TaskCheckpoint.newBuilder().setUri(remote.toString()).setStep(step.getAsLong()).build());
    }
    return n;
  }

  private Map<String, Stamp> scan() {
    Map<String, Stamp> out = new HashMap<>();
    if (!Files.isDirectory(local)) return out;
    try (Stream<Path> s = Files.walk(local)) {
      for (Path f : (Iterable<Path>) s::iterator) {
        try {
          BasicFileAttributes a = Files.readAttributes(f, BasicFileAttributes.class,
              java.nio.file.LinkOption.NOFOLLOW_LINKS);
          if (a.isRegularFile()) {
            out.put(local.relativize(f).toString(), new Stamp(a.size(), a.lastModifiedTime().toMillis()));
          }
        } catch (IOException ignored) {
          // deleted between listing and reading
        }
      }
    } catch (IOException | java.io.UncheckedIOException ignored) {
      // deleted while walking: next round
    }
    return out;
  }

}
