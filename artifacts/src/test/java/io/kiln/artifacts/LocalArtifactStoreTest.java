package io.kiln.artifacts;

import static org.junit.jupiter.api.Assertions.*;

import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LocalArtifactStoreTest {
  @TempDir Path dir;

  @Test
  void putReadListAndUpload() throws Exception {
    ArtifactStore store = ArtifactStore.forRoot(dir.toUri());
    URI a = store.uri("jobs/j1/model/model.params");
    store.put(a, "weights".getBytes(StandardCharsets.UTF_8));
    assertTrue(store.exists(a));
    assertEquals("weights", new String(store.read(a), StandardCharsets.UTF_8));

    Path local = Files.createDirectories(dir.resolve("scratch/out/sub"));
    Files.writeString(local.resolve("m.txt"), "x");
    store.upload(dir.resolve("scratch/out"), store.uri("jobs/j1/output"));
    assertEquals(2, store.list(store.uri("jobs/j1")).size());
    assertEquals(store.uri("jobs/j1/output/sub/m.txt"), store.list(store.uri("jobs/j1/output")).get(0));
  }

  @Test
  void rejectsKeysAndUrisOutsideTheStore() {
    ArtifactStore store = ArtifactStore.forRoot(dir.resolve("store").toUri());
    assertThrows(IllegalArgumentException.class, () -> store.uri("../escape"));
    assertThrows(IllegalArgumentException.class, () -> store.read(URI.create("file:/etc/passwd")));
    assertThrows(IllegalArgumentException.class, () -> ArtifactStore.forRoot(URI.create("gs://bucket/x")));
    assertFalse(store.exists(store.uri("nothing/here")));
  }
}
