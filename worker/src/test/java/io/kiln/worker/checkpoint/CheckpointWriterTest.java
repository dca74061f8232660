package io.kiln.worker.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.protocol.proto.CheckpointConfig;
import io.kiln.protocol.proto.JobSpec;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The checkpoint format, corruption detection, retention and skipping, on small hand-made arrays. */
class CheckpointWriterTest {
  @TempDir Path tmp;
  NDManager manager;
  final List<String> logs = new CopyOnWriteArrayList<>();
  final List<CheckpointWriter.Written> written = new CopyOnWriteArrayList<>();

  @BeforeEach
  void open() {
    manager = NDManager.newBaseManager(Device.cpu(), "PyTorch");
  }

  @AfterEach
  void close() {
    manager.close();
  }

  static CheckpointMetadata layout() {
    return CheckpointMetadata.layout("mlp", Map.of("hidden", "2"), "momentum_sgd", 0.05f, 0.9f, 2, 1, 64, 0, 3000,
        List.of("w", "b"), List.of(new long[] {2, 3}, new long[] {2}));
  }

  /** Parameters w (2x3), b (2), then their momentum buffers: values base, base+1, ... */
  NDList arrays(float base) {
    float[] all = new float[16];
    for (int i = 0; i < all.length; i++) all[i] = base + i;
    return new NDList(manager.create(java.util.Arrays.copyOfRange(all, 0, 6), new Shape(2, 3)),
        manager.create(java.util.Arrays.copyOfRange(all, 6, 8)),
        manager.create(java.util.Arrays.copyOfRange(all, 8, 14), new Shape(2, 3)),
        manager.create(java.util.Arrays.copyOfRange(all, 14, 16)));
  }

  static CheckpointMetadata.Position at(long step) {
    return new CheckpointMetadata.Position(step, 1, (int) step, 46, false);
  }

  CheckpointWriter writer(ArtifactStore store, int keep) throws InterruptedException {
    CheckpointWriter w = new CheckpointWriter(store, tmp.resolve("job/checkpoints").toUri(), keep,
        new CheckpointWriter.Listener() {
          @Override
          public void onLog(String level, String message) {
            logs.add(level + " " + message);
          }

          @Override
          public void onWritten(CheckpointWriter.Written w) {
            written.add(w);
          }
        }, "job-1", "job-1-r0");
    w.begin(layout());
    return w;
  }

  CheckpointWriter writer(int keep) throws InterruptedException {
    return writer(ArtifactStore.forRoot(tmp.resolve("job").toUri()), keep);
  }

  Path folder(long step) {
    return tmp.resolve("job/checkpoints/" + Checkpoints.folderName(step));
  }

  /** A resuming job whose named checkpoint was pruned by a still-running earlier attempt takes the newest beside it. */
  @Test
  void resumingFromAPrunedCheckpointFallsBackToTheNewestBesideIt() throws Exception {
    try (CheckpointWriter w = writer(1)) {
      assertTrue(w.save(at(5), arrays(1f), true));
      assertTrue(w.save(at(9), arrays(2f), true));
    }
    assertFalse(Files.exists(folder(5)));
    Checkpoints.Resumption r = Checkpoints.resolveForResume(folder(5).toUri().toString());
    assertEquals(folder(9).toUri(), r.uri());
    assertTrue(r.fallbackReason().contains("no such checkpoint folder"), r.fallbackReason());
    assertEquals("", Checkpoints.resolveForResume(folder(9).toString()).fallbackReason());
    // nothing complete beside it: the original error
    Checkpoints.delete(folder(9).toUri());
    CheckpointException e = assertThrows(CheckpointException.class,
        () -> Checkpoints.resolveForResume(folder(5).toUri().toString()));
    assertTrue(e.getMessage().contains("no such checkpoint folder"), e.getMessage());
  }

  @Test
  void writesAReadableCheckpoint() throws Exception {
    try (CheckpointWriter w = writer(3)) {
      assertTrue(w.save(at(5), arrays(1f), false));
    }
    Path dir = folder(5);
    assertTrue(Files.exists(dir.resolve("state.bin")) && Files.exists(dir.resolve("checkpoint.json")));
    assertEquals(64, Files.size(dir.resolve("state.bin")));
    // a checkpoint folder, or its checkpoint.json, given as a path or a URI
    assertEquals(dir.toUri(), Checkpoints.resolve(dir.toString()));
    assertEquals(dir.toUri(), Checkpoints.resolve(dir.resolve("checkpoint.json").toUri().toString()));
    Checkpoint c = Checkpoints.load(dir.toUri());
    assertEquals(dir.toUri(), c.uri());
    assertEquals(at(5), c.position());
    assertEquals(List.of("w", "b", "w", "b"), c.metadata().tensors().stream().map(CheckpointMetadata.TensorInfo::name)
        .toList());
    assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, floats(c.tensor(0)), 0f);
    assertArrayEquals(new float[] {15, 16}, floats(c.tensor(3)), 0f);
    assertEquals(0.05f, c.metadata().learningRate());
    assertEquals(64, c.metadata().batchSize());
    JsonObject json = JsonParser.parseString(Files.readString(dir.resolve("checkpoint.json"))).getAsJsonObject();
    assertEquals("kiln-checkpoint-v1", json.get("format").getAsString());
    assertEquals(5, json.getAsJsonObject("position").get("global_step").getAsLong());
    assertEquals("momentum", json.getAsJsonArray("tensors").get(2).getAsJsonObject().get("kind").getAsString());
    assertTrue(json.getAsJsonObject("state").get("crc32").getAsLong() > 0);
    assertEquals("job-1", json.get("job_id").getAsString());
    assertEquals("job-1-r0", c.metadata().taskId());
    assertEquals(1, written.size());
    assertEquals(dir.toUri(), written.get(0).uri());
    // the host buffer is a copy: changing the arrays afterwards does not change what was written
    CheckpointWriter.Stats st;
    try (CheckpointWriter w = writer(3)) {
      NDList a = arrays(1f);
      assertTrue(w.save(at(6), a, false));
      a.get(0).muli(0);
      st = w.stats();
    }
    assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, floats(Checkpoints.load(folder(6).toUri()).tensor(0)), 0f);
    assertEquals(1, st.taken());
  }

  @Test
  void corruptAndIncompleteCheckpointsFailClearly() throws Exception {
    try (CheckpointWriter w = writer(3)) {
      w.save(at(7), arrays(0f), true);
    }
    Path dir = folder(7);
    Path state = dir.resolve("state.bin");
    byte[] good = Files.readAllBytes(state);

    byte[] bad = good.clone();
    bad[13] ^= 0x01;
    Files.write(state, bad);
    CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir.toUri()));
    assertTrue(e.getMessage().startsWith(state.toUri() + ": CRC32 mismatch") && e.getMessage().contains("corrupt"),
        e.getMessage());

    Files.write(state, java.util.Arrays.copyOf(good, 60));
    e = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir.toUri()));
    assertTrue(e.getMessage().contains("state.bin: truncated: 60 bytes"), e.getMessage());

    Files.write(state, good);
    Checkpoints.load(dir.toUri()); // intact again
    Files.delete(dir.resolve("checkpoint.json"));
    e = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir.toUri()));
    assertEquals(dir.toUri() + ": incomplete checkpoint: it has no checkpoint.json (the write never finished)",
        e.getMessage());
    e = assertThrows(CheckpointException.class, () -> Checkpoints.resolve(dir.toString()));
    assertTrue(e.getMessage().contains("incomplete checkpoint"), e.getMessage());
    // a job folder whose only checkpoint is incomplete
    e = assertThrows(CheckpointException.class, () -> Checkpoints.resolve(tmp.resolve("job").toString()));
    assertTrue(e.getMessage().startsWith(tmp.resolve("job").toUri() + ": no complete checkpoint"), e.getMessage());
    e = assertThrows(CheckpointException.class, () -> Checkpoints.resolve(tmp.resolve("nowhere").toUri().toString()));
    assertTrue(e.getMessage().contains("nowhere") && e.getMessage().contains("does not exist"), e.getMessage());
    assertFalse(Files.exists(tmp.resolve("nowhere")), "resolving must not create folders");
  }

  @Test
  void retentionKeepsTheNewestCheckpoints() throws Exception {
    Files.createDirectories(folder(0)); // an interrupted write
    Files.createDirectories(folder(99)); // a complete one from an abandoned attempt
    Files.writeString(folder(99).resolve("checkpoint.json"), "{}");
    try (CheckpointWriter w = writer(2)) {
      for (int step = 1; step <= 5; step++) assertTrue(w.save(at(step), arrays(step), true));
    }
    List<Checkpoints.Entry> left = Checkpoints.list(ArtifactStore.forRoot(tmp.toUri()),
        tmp.resolve("job/checkpoints").toUri());
    assertEquals(List.of(4L, 5L), left.stream().map(Checkpoints.Entry::step).toList(), left.toString());
    assertTrue(left.stream().allMatch(Checkpoints.Entry::complete));
    assertTrue(logs.stream().anyMatch(l -> l.contains("step-00000099") && l.contains("abandoned attempt")),
        logs.toString());
    assertEquals(5, written.size());
    assertEquals(folder(5).toUri(), Checkpoints.resolve(tmp.resolve("job").toString()));
  }

  @Test
  void aCheckpointDueWhileTheLastIsBeingWrittenIsSkipped() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    ArtifactStore slow = new SlowStore(ArtifactStore.forRoot(tmp.resolve("job").toUri()), release);
    CheckpointWriter.Stats st;
    try (CheckpointWriter w = writer(slow, 5)) {
      assertTrue(w.save(at(1), arrays(1), false));
      assertFalse(w.save(at(2), arrays(2), false), "skipped: the write of step 1 is still running");
      release.countDown();
      assertTrue(w.save(at(3), arrays(3), true), "the last one waits instead");
      w.close();
      st = w.stats();
    }
    assertEquals(1, st.skipped());
    assertEquals(2, st.written());
    assertTrue(Files.exists(folder(1).resolve("checkpoint.json")) && Files.exists(folder(3).resolve("checkpoint.json")));
    assertFalse(Files.exists(folder(2)));
    assertTrue(logs.stream().anyMatch(l -> l.startsWith("WARN checkpoint at global step 2 skipped")), logs.toString());
  }

  @Test
  void settingsComeFromTheSpec() {
    assertEquals(new CheckpointSettings(0, 3, ""), CheckpointSettings.fromSpec(JobSpec.getDefaultInstance()));
    JobSpec spec = JobSpec.newBuilder().setCheckpoint(CheckpointConfig.newBuilder().setEverySteps(100).setKeep(0)
        .setResumeFrom(" /x/y ")).build();
    assertEquals(new CheckpointSettings(100, 3, "/x/y"), CheckpointSettings.fromSpec(spec));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CheckpointSettings.fromSpec(
        JobSpec.newBuilder().setCheckpoint(CheckpointConfig.newBuilder().setEverySteps(-1)).build()));
    assertEquals("checkpoint.every_steps must be >= 0, got -1", e.getMessage());
  }

  static float[] floats(FloatBuffer b) {
    float[] f = new float[b.remaining()];
    b.duplicate().get(f);
    return f;
  }

  /** Holds every state.bin write until released. */
  static final class SlowStore implements ArtifactStore {
    private final ArtifactStore d;
    private final CountDownLatch release;

    SlowStore(ArtifactStore d, CountDownLatch release) {
      this.d = d;
      this.release = release;
    }

    @Override
    public URI uri(String key) {
      return d.uri(key);
    }

    @Override
    public void put(URI uri, byte[] bytes) throws IOException {
      d.put(uri, bytes);
    }

    @Override
    public OutputStream create(URI uri) throws IOException {
      if (uri.toString().endsWith("state.bin")) {
        try {
          release.await(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          throw new IOException(e);
        }
      }
      return d.create(uri);
    }

    @Override
    public void upload(Path local, URI uri) throws IOException {
      d.upload(local, uri);
    }

    @Override
    public InputStream open(URI uri) throws IOException {
      return d.open(uri);
    }

    @Override
    public byte[] read(URI uri) throws IOException {
      return d.read(uri);
    }

    @Override
    public boolean exists(URI uri) {
      return d.exists(uri);
    }

    @Override
    public List<URI> list(URI prefix) throws IOException {
      return d.list(prefix);
    }

    @Override
    public Path localPath(URI uri) throws IOException {
      return d.localPath(uri);
    }
  }
}
