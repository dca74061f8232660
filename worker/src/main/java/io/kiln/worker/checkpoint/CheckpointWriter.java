package io.kiln.worker.checkpoint;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import io.kiln.artifacts.ArtifactStore;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.zip.CRC32;

/**
 * Writes checkpoints without stalling training. {@link #save} runs on the training thread at a step
 * boundary and only copies the parameters and momentum buffers into a host buffer allocated once
 * (a memcpy of each array's memory); a single background thread then computes the CRC32 and writes
 * {@code step-NNNNNNNN/state.bin} and, last, {@code checkpoint.json} through the artifact store,
 * applies retention and reports the checkpoint to the {@link Listener}.
 *
 * <p>One write at a time: when a checkpoint falls due while the previous one is still being
 * written, it is skipped (and logged) rather than waiting, unless the caller asks to wait (the last
 * checkpoint of a run). {@link #close()} waits for the write in flight.
 *
 * <p>Retention (after each write): the newest {@code keep} complete checkpoints stay; older ones,
 * incomplete leftovers of interrupted writes, and checkpoints with a higher step than the one just
 * written (an abandoned attempt of the same job) are deleted. The artifact store has no delete, so
 * retention works on {@code file:} stores only (elsewhere old checkpoints stay, logged once).
 *
 * <p>{@link #begin}, {@link #save} and {@link #close} are called by one thread (the task's).
 */
public final class CheckpointWriter implements AutoCloseable {

  /** Called on the writer thread; keep it quick. */
  public interface Listener {
    /** A human-readable line: level {@code INFO} or {@code WARN}. */
    default void onLog(String level, String message) {}

    /** A checkpoint is complete (checkpoint.json written) and retention has run. */
    default void onWritten(Written written) {}
  }

  /** A complete checkpoint: its folder, position, size and how long the snapshot and the write took. */
  public record Written(URI uri, CheckpointMetadata.Position position, long bytes, double snapshotMs, double writeMs) {}

  /**
   * @param taken snapshots handed to the writer thread
   * @param skipped checkpoints skipped because the previous write was still running
   * @param failed writes that failed (logged; training goes on)
   */
  public record Stats(int taken, int written, int skipped, int failed, double meanSnapshotMs, double maxSnapshotMs,
      double meanWriteMs) {}

  private static final AtomicInteger THREADS = new AtomicInteger();
  private static final int IO_CHUNK = 1 << 20;

  private final ArtifactStore store;
  private final URI folder;
  private final int keep;
  private final Listener listener;
  private final String jobId;
  private final String taskId;
  private final ExecutorService executor;
  private CheckpointMetadata layout;
  private ByteBuffer host;
  private byte[] ioChunk;
  private Future<?> pending;
  private long pendingStep = -1;
  private boolean closed;
  private boolean retentionUnsupportedLogged;
  // statistics: snapshot ones on the caller's thread, write ones on the writer thread
  private int taken;
  private int skipped;
  private long snapshotNanos;
  private long maxSnapshotNanos;
  private final AtomicInteger written = new AtomicInteger();
  private final AtomicInteger failed = new AtomicInteger();
  private volatile long writeNanos;

  /**
   * @param checkpointsFolder e.g. {@code <job_artifacts_uri>/checkpoints/}, inside {@code store}
   * @param keep how many complete checkpoints to keep (at least 1)
   */
  public CheckpointWriter(ArtifactStore store, URI checkpointsFolder, int keep, Listener listener) {
    this(store, checkpointsFolder, keep, listener, "", "");
  }

  /** As above; {@code jobId} and {@code taskId} are recorded in each checkpoint.json. */
  public CheckpointWriter(ArtifactStore store, URI checkpointsFolder, int keep, Listener listener, String jobId,
      String taskId) {
    if (keep < 1) throw new IllegalArgumentException("keep must be >= 1, got " + keep);
    this.store = store;
    this.folder = Checkpoints.folder(checkpointsFolder);
    this.keep = keep;
    this.listener = listener == null ? new Listener() {} : listener;
    this.jobId = jobId == null ? "" : jobId;
    this.taskId = taskId == null ? "" : taskId;
    this.executor = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "kiln-checkpoint-writer-" + THREADS.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
  }

  /** The checkpoints folder (with a trailing slash). */
  public URI folder() {
    return folder;
  }

  /**
   * Sets what the checkpoints of this run hold (from {@link CheckpointMetadata#layout}) and
   * allocates the host buffer for it; called once before the first {@link #save}.
   */
  public void begin(CheckpointMetadata layout) throws InterruptedException {
    if (closed) throw new IllegalStateException("checkpoint writer is closed");
    awaitIdle();
    if (layout.dataBytes() > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException("model state of " + layout.dataBytes() + " bytes: checkpoints over 2 GiB are "
          + "not supported yet");
    }
    this.layout = layout;
    if (host == null || host.capacity() != layout.dataBytes()) {
      host = ByteBuffer.allocateDirect((int) layout.dataBytes()).order(ByteOrder.LITTLE_ENDIAN);
    }
  }

  /**
   * Takes a checkpoint at {@code position}: copies {@code arrays} (the layout's tensors in order:
   * parameters, then momentum buffers; dense float32 CPU arrays) into the host buffer now and writes
   * it in the background.
   *
   * @param waitForPrevious wait for a write still in flight instead of skipping this checkpoint
   * @return false if skipped because the previous write is still running
   */
  public boolean save(CheckpointMetadata.Position position, NDList arrays, boolean waitForPrevious)
      throws InterruptedException {
    if (layout == null) throw new IllegalStateException("begin(layout) was not called");
    if (closed) throw new IllegalStateException("checkpoint writer is closed");
    if (pending != null && !pending.isDone()) {
      if (!waitForPrevious) {
        skipped++;
        listener.onLog("WARN", String.format(Locale.ROOT, "checkpoint at global step %d skipped: the one of step %d "
            + "is still being written (checkpoint less often: checkpoint.every_steps)", position.globalStep(),
            pendingStep));
        return false;
      }
      awaitIdle();
    }
    List<CheckpointMetadata.TensorInfo> tensors = layout.tensors();
    if (arrays.size() != tensors.size()) {
      throw new IllegalArgumentException("the layout has " + tensors.size() + " arrays, got " + arrays.size());
    }
    long t0 = System.nanoTime();
    host.clear();
    FloatBuffer out = host.asFloatBuffer();
    for (int i = 0; i < arrays.size(); i++) {
      NDArray a = arrays.get(i);
      FloatBuffer src = a.toByteBuffer(true).order(ByteOrder.nativeOrder()).asFloatBuffer();
      if (src.remaining() != tensors.get(i).count()) {
        throw new IllegalArgumentException("array " + i + " (" + tensors.get(i).describe() + ") has " + src.remaining()
            + " values, the layout says " + tensors.get(i).count());
      }
      out.put(src);
    }
    long snap = System.nanoTime() - t0;
    taken++;
    snapshotNanos += snap;
    maxSnapshotNanos = Math.max(maxSnapshotNanos, snap);
    CheckpointMetadata meta = layout;
    pendingStep = position.globalStep();
    pending = executor.submit(() -> write(meta, position, snap / 1e6));
    return true;
  }

  /** Waits until no write is in flight. */
  public void awaitIdle() throws InterruptedException {
    Future<?> f = pending;
    if (f == null) return;
    try {
      f.get();
    } catch (ExecutionException e) {
      // write() catches everything; nothing to do
    }
  }

  /** Snapshot and write statistics so far. */
  public Stats stats() {
    int w = written.get();
    return new Stats(taken, w, skipped, failed.get(), taken > 0 ? snapshotNanos / 1e6 / taken : 0,
        maxSnapshotNanos / 1e6, w > 0 ? writeNanos / 1e6 / w : 0);
  }

  /** Waits for the write in flight (so the last checkpoint is complete), then stops the writer thread. */
  @Override
  public void close() {
    if (closed) return;
    closed = true;
    try {
      awaitIdle();
      executor.shutdown();
      executor.awaitTermination(1, TimeUnit.MINUTES);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      executor.shutdownNow();
    }
  }

  /** On the writer thread: state.bin, then checkpoint.json, then retention; never throws. */
  private void write(CheckpointMetadata layout, CheckpointMetadata.Position position, double snapshotMs) {
    long t0 = System.nanoTime();
    URI dir = Checkpoints.child(folder, Checkpoints.folderName(position.globalStep()) + "/");
    try {
      ByteBuffer data = host.duplicate();
      data.position(0).limit((int) layout.dataBytes());
      CRC32 crc = new CRC32();
      crc.update(data.duplicate());
      // A folder of this name left by an abandoned attempt: make it incomplete before replacing its data.
      if (store.exists(Checkpoints.child(dir, CheckpointMetadata.JSON_FILE))) Checkpoints.delete(dir);
      if (ioChunk == null) ioChunk = new byte[IO_CHUNK];
      try (OutputStream out = store.create(Checkpoints.child(dir, CheckpointMetadata.DATA_FILE))) {
        while (data.hasRemaining()) {
          int n = Math.min(ioChunk.length, data.remaining());
          data.get(ioChunk, 0, n);
          out.write(ioChunk, 0, n);
        }
      }
      CheckpointMetadata meta = layout.taken(position, crc.getValue(), Instant.now().toString(), jobId, taskId);
      store.put(Checkpoints.child(dir, CheckpointMetadata.JSON_FILE), meta.toJson().getBytes(StandardCharsets.UTF_8));
      long took = System.nanoTime() - t0;
      writeNanos += took;
      written.incrementAndGet();
      retain(position.globalStep());
      listener.onLog("INFO", String.format(Locale.ROOT,
          "checkpoint %s: global step %d, epoch %d step %d/%d%s, %.1f MB (snapshot %.2f ms, write %.1f ms)", dir,
          position.globalStep(), position.epoch(), position.stepInEpoch(), position.stepsPerEpoch(),
          position.epochEnd() ? " (epoch end)" : "", layout.dataBytes() / 1e6, snapshotMs, took / 1e6));
      listener.onWritten(new Written(dir, position, layout.dataBytes(), snapshotMs, took / 1e6));
    } catch (Throwable e) {
      failed.incrementAndGet();
      listener.onLog("WARN", "checkpoint at global step " + position.globalStep() + " failed (" + dir + "): " + e);
    }
  }

  /** Deletes what retention does not keep (see the class comment); problems are logged. */
  private void retain(long newestStep) {
    try {
      List<Checkpoints.Entry> all = Checkpoints.list(store, folder);
      List<Checkpoints.Entry> delete = new ArrayList<>();
      int kept = 0;
      for (int i = all.size() - 1; i >= 0; i--) {
        Checkpoints.Entry e = all.get(i);
        if (e.step() > newestStep) {
          delete.add(e);
        } else if (e.complete() && kept < keep) {
          kept++;
        } else if (e.step() != newestStep) {
          delete.add(e);
        }
      }
      if (delete.isEmpty()) return;
      if (!Checkpoints.isFile(folder)) {
        if (!retentionUnsupportedLogged) {
          retentionUnsupportedLogged = true;
          listener.onLog("WARN", "old checkpoints stay in " + folder + ": deleting needs a file: artifact store");
        }
        return;
      }
      for (Checkpoints.Entry e : delete) {
        Checkpoints.delete(e.uri());
        if (e.step() > newestStep) {
          listener.onLog("WARN", "deleted " + e.uri() + ": it is newer than this run's step " + newestStep
              + " (left by an abandoned attempt)");
        }
      }
    } catch (IOException | RuntimeException e) {
      listener.onLog("WARN", "checkpoint retention in " + folder + " failed: " + e);
    }
  }
}
