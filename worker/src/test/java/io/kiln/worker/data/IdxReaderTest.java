package io.kiln.worker.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.kiln.worker.TestData;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IdxReaderTest {
  @TempDir Path tmp;

  @Test
  void readsTheCommittedSubset() throws Exception {
    MnistDataset.Splits s = MnistDataset.load(TestData.fashionSmall().toString(), null);
    assertEquals(3000, s.train().size());
    assertEquals(1000, s.test().size());
    assertEquals(28, s.train().rows());
    assertEquals(28, s.train().cols());
    assertEquals(3000 * 784, s.train().pixels().length);
    int[] counts = new int[10];
    for (int l : s.train().labels()) counts[l]++;
    for (int c : counts) assertTrue(c > 200, "every class appears: " + Arrays.toString(counts));
    assertEquals(MnistDataset.FASHION_CLASSES, s.classNames());
    // file: URIs work as well as paths
    MnistDataset viaUri = MnistDataset.load(TestData.fashionSmall().toUri().toString(), null).test();
    assertEquals(1000, viaUri.size());
  }

  @Test
  void pixelsAreScaledToUnitRange() throws Exception {
    MnistDataset test = MnistDataset.loadTest(TestData.fashionSmall());
    try (NDManager m = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
      NDArray x = test.images(m);
      assertEquals(1000, x.getShape().get(0));
      assertEquals(784, x.getShape().get(1));
      assertTrue(x.min().getFloat() >= 0f);
      assertEquals(1f, x.max().getFloat(), 1e-6);
      int i = 17, p = 400;
      assertEquals(test.pixel(i, p), x.getFloat(i, p), 1e-6);
      assertEquals(test.labels()[5], test.labels(m).getLong(5));
    }
  }

  @Test
  void readsRawUncompressedFiles() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("raw"));
    for (String name : new String[] {MnistDataset.TEST_IMAGES, MnistDataset.TEST_LABELS}) {
      Files.write(dir.resolve(name), gunzip(TestData.fashionSmall().resolve(name + ".gz")));
    }
    MnistDataset raw = MnistDataset.loadTest(dir);
    MnistDataset gz = MnistDataset.loadTest(TestData.fashionSmall());
    assertTrue(Arrays.equals(raw.pixels(), gz.pixels()));
    assertTrue(Arrays.equals(raw.labels(), gz.labels()));
  }

  @Test
  void truncatedImageFileIsReported() throws Exception {
    Path dir = copyOfSubset("truncated");
    byte[] raw = gunzip(dir.resolve(MnistDataset.TRAIN_IMAGES + ".gz"));
    Files.write(dir.resolve(MnistDataset.TRAIN_IMAGES + ".gz"), gzip(Arrays.copyOf(raw, raw.length - 1000)));
    DataException e = assertThrows(DataException.class, () -> MnistDataset.loadTrain(dir));
    assertTrue(e.getMessage().contains(MnistDataset.TRAIN_IMAGES) && e.getMessage().contains("truncated"), e.getMessage());
  }

  @Test
  void truncatedGzipStreamIsReported() throws Exception {
    Path dir = copyOfSubset("cut-gzip");
    Path f = dir.resolve(MnistDataset.TRAIN_LABELS + ".gz");
    byte[] gz = Files.readAllBytes(f);
    Files.write(f, Arrays.copyOf(gz, gz.length / 2));
    DataException e = assertThrows(DataException.class, () -> MnistDataset.loadTrain(dir));
    assertTrue(e.getMessage().contains(MnistDataset.TRAIN_LABELS), e.getMessage());
    assertTrue(e.getMessage().contains("truncated"), e.getMessage());
  }

  @Test
  void corruptGzipIsReported() throws Exception {
    Path dir = copyOfSubset("corrupt");
    Path f = dir.resolve(MnistDataset.TRAIN_IMAGES + ".gz");
    byte[] gz = Files.readAllBytes(f);
    for (int i = 100; i < 400; i++) gz[i] = (byte) (gz[i] ^ 0x5a);
    Files.write(f, gz);
    DataException e = assertThrows(DataException.class, () -> MnistDataset.loadTrain(dir));
    assertTrue(e.getMessage().contains(MnistDataset.TRAIN_IMAGES), e.getMessage());
    assertTrue(e.getMessage().matches(".*(corrupt|truncated|magic).*"), e.getMessage());
  }

  @Test
  void wrongMagicIsReported() throws Exception {
    Path dir = copyOfSubset("magic");
    // a label file where the image file should be
    Files.copy(dir.resolve(MnistDataset.TEST_LABELS + ".gz"), dir.resolve(MnistDataset.TEST_IMAGES + ".gz"),
        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    DataException e = assertThrows(DataException.class, () -> MnistDataset.loadTest(dir));
    assertTrue(e.getMessage().contains(MnistDataset.TEST_IMAGES) && e.getMessage().contains("wrong magic number"),
        e.getMessage());
  }

  @Test
  void countMismatchIsReported() throws Exception {
    Path dir = copyOfSubset("mismatch");
    Path f = dir.resolve(MnistDataset.TEST_LABELS + ".gz");
    byte[] raw = gunzip(f);
    ByteBuffer.wrap(raw).putInt(4, 999);
    Files.write(f, gzip(Arrays.copyOf(raw, 8 + 999)));
    DataException e = assertThrows(DataException.class, () -> MnistDataset.loadTest(dir));
    assertTrue(e.getMessage().contains("999 labels") && e.getMessage().contains("1000 images"), e.getMessage());
  }

  @Test
  void badLabelValueIsReported() throws Exception {
    Path dir = copyOfSubset("label");
    Path f = dir.resolve(MnistDataset.TEST_LABELS + ".gz");
    byte[] raw = gunzip(f);
    raw[8 + 3] = 42;
    Files.write(f, gzip(raw));
    DataException e = assertThrows(DataException.class, () -> MnistDataset.loadTest(dir));
    assertTrue(e.getMessage().contains("label 42 at index 3"), e.getMessage());
  }

  @Test
  void missingDirectoryAndFilesAreReported() throws Exception {
    DataException e = assertThrows(DataException.class, () -> MnistDataset.load(tmp.resolve("nope").toString(), null));
    assertTrue(e.getMessage().contains("does not exist") && e.getMessage().contains("nope"), e.getMessage());
    Path empty = Files.createDirectories(tmp.resolve("empty"));
    e = assertThrows(DataException.class, () -> MnistDataset.loadTrain(empty));
    assertTrue(e.getMessage().contains("missing " + MnistDataset.TRAIN_IMAGES), e.getMessage());
    e = assertThrows(DataException.class, () -> MnistDataset.load("s3://bucket/x", null));
    assertTrue(e.getMessage().contains("unsupported URI scheme 's3'"), e.getMessage());
    e = assertThrows(DataException.class, () -> MnistDataset.load("relative/dir", null));
    assertTrue(e.getMessage().contains("neither an absolute path nor a file: URI"), e.getMessage());
  }

  @Test
  void testChannelOverridesWhereTestFilesAreRead() throws Exception {
    Path trainOnly = Files.createDirectories(tmp.resolve("train-only"));
    for (String n : new String[] {MnistDataset.TRAIN_IMAGES, MnistDataset.TRAIN_LABELS}) {
      Files.copy(TestData.fashionSmall().resolve(n + ".gz"), trainOnly.resolve(n + ".gz"));
    }
    assertThrows(DataException.class, () -> MnistDataset.load(trainOnly.toString(), null));
    MnistDataset.Splits s = MnistDataset.load(trainOnly.toString(), "file:" + TestData.fashionSmall());
    assertEquals(1000, s.test().size());
  }

  private Path copyOfSubset(String name) throws IOException {
    Path dir = Files.createDirectories(tmp.resolve(name));
    try (var files = Files.list(TestData.fashionSmall())) {
      for (Path f : (Iterable<Path>) files::iterator) {
        if (f.getFileName().toString().endsWith(".gz")) Files.copy(f, dir.resolve(f.getFileName()));
      }
    }
    return dir;
  }

  static byte[] gunzip(Path f) throws IOException {
    try (InputStream in = new GZIPInputStream(Files.newInputStream(f))) {
      return in.readAllBytes();
    }
  }

  static byte[] gzip(byte[] b) throws IOException {
    ByteArrayOutputStream bos = new ByteArrayOutputStream();
    try (GZIPOutputStream out = new GZIPOutputStream(bos)) {
      out.write(b);
    }
    return bos.toByteArray();
  }
}
