package io.kiln.worker.algorithms.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kiln.worker.TestData;
import io.kiln.worker.data.DataException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TableReaderTest {
  @TempDir Path tmp;

  @Test
  void csvWithMissingValuesGzipAndSeveralFiles() throws Exception {
    Path dir = tmp.resolve("train");
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("a.csv"), "1,0.5,\n0, 2 ,nan\n");
    try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(dir.resolve("b.csv.gz")))) {
      out.write("2,3e-1,4\r\n".getBytes(StandardCharsets.UTF_8));
    }
    Files.writeString(dir.resolve(".hidden"), "garbage");
    assertEquals(TableFormat.CSV, TableReader.detect("train", dir.toString()));
    Table t = TableReader.read("train", dir.toString(), TableFormat.CSV, TableReader.Options.defaults());
    assertEquals(3, t.rows());
    assertEquals(2, t.cols());
    assertArrayEquals(new float[] {1, 0, 2}, t.labels());
    float[] x = t.denseValues();
    assertEquals(0.5f, x[0]);
    assertTrue(Float.isNaN(x[1]));
    assertEquals(2f, x[2]);
    assertTrue(Float.isNaN(x[3]));
    assertEquals(0.3f, x[4]);
    assertEquals(4f, x[5]);

    Table head = TableReader.read("train", dir.toString(), TableFormat.CSV, new TableReader.Options(2, false,
        new io.kiln.worker.training.StopSignal()));
    assertEquals(2, head.rows());
    Table shard = t.shard(1, 2);
    assertEquals(1, shard.rows());
    assertArrayEquals(new float[] {0}, shard.labels());
  }

  @Test
  void libsvmWithWeightsAndQueryGroups() throws Exception {
    Path f = tmp.resolve("rank.txt");
    Files.writeString(f, "# comment\n2:0.5 qid:1 0:1 3:2.5\n1:0.5 qid:1 1:1\n0:1 qid:2 2:1 # trailing\n3:1 qid:3 0:4\n");
    assertEquals(TableFormat.LIBSVM, TableReader.detect("train", f.toString()));
    Table t = TableReader.read("train", f.toString(), TableFormat.LIBSVM, TableReader.Options.defaults());
    assertEquals(4, t.rows());
    assertEquals(4, t.cols());
    assertArrayEquals(new float[] {2, 1, 0, 3}, t.labels());
    assertArrayEquals(new float[] {0.5f, 0.5f, 1, 1}, t.weights());
    assertArrayEquals(new int[] {2, 1, 1}, t.groups());
    assertArrayEquals(new long[] {0, 2, 3, 4, 5}, t.indptr());
    // groups stay whole when sharded: rank 0 gets groups 0 and 2
    Table s = t.shard(0, 2);
    assertArrayEquals(new float[] {2, 1, 3}, s.labels());
    assertArrayEquals(new int[] {2, 1}, s.groups());
    assertArrayEquals(new int[] {0, 3, 1, 0}, s.indices());

    Files.writeString(f, "1 1:0.5\n0 1=0.5\n");
    DataException e = assertThrows(DataException.class,
        () -> TableReader.read("train", f.toString(), TableFormat.LIBSVM, TableReader.Options.defaults()));
    assertEquals(f + ":2: '1=0.5' is not index:value", e.getMessage());
  }

  @Test
  void idxIsDetectedAndScaled() throws Exception {
    Path dir = TestData.fashionSmall();
    assertEquals(TableFormat.IDX, TableReader.detect("train", dir.toString()));
    Table t = TableReader.readIdx(dir, false, 100);
    assertEquals(100, t.rows());
    assertEquals(784, t.cols());
    for (float v : t.denseValues()) assertTrue(v >= 0 && v <= 1);
    assertTrue(TableReader.hasIdxTest(dir));
    assertNull(TableReader.idxFolder("train", tmp.toString()));
  }

  @Test
  void contentTypes() {
    assertEquals(TableFormat.CSV, TableFormat.fromContentType("text/csv; label_size=1"));
    assertEquals(TableFormat.LIBSVM, TableFormat.fromContentType("libsvm"));
    assertEquals(TableFormat.IDX, TableFormat.fromContentType("application/x-idx"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> TableFormat.fromContentType("application/x-parquet"));
    assertEquals("content_type 'application/x-parquet' is not supported (supported: text/csv, text/libsvm, "
        + "application/x-idx)", e.getMessage());
  }
}
