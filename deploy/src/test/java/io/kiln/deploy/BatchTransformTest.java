package io.kiln.deploy;

import static org.junit.jupiter.api.Assertions.*;

import io.kiln.deploy.predict.ModelInfo;
import io.kiln.deploy.predict.Predictor;
import io.kiln.deploy.predict.Predictors;
import io.kiln.deploy.predict.Tensor;
import io.kiln.deploy.transform.BatchTransform;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Splits, per-record failures and the retry of a failed split. */
class BatchTransformTest {
  @TempDir Path tmp;

  @Test
  void splitsCoverEveryRecordOnce() {
    List<BatchTransform.Split> s = BatchTransform.splits(new int[] {5, 0, 3}, 2);
    assertEquals(List.of(new BatchTransform.Split(0, 0, 0, 2), new BatchTransform.Split(1, 0, 2, 4),
        new BatchTransform.Split(2, 0, 4, 5), new BatchTransform.Split(3, 1, 0, 0), new BatchTransform.Split(4, 2, 0, 2),
        new BatchTransform.Split(5, 2, 2, 3)), s);
  }

  @Test
  void badRecordsFailAloneAndAFailedSplitIsRetried() throws Exception {
    Path input = Files.writeString(tmp.resolve("in.csv"), "1,1\n9,9\nx,1\n1,2,3\n0,0\n");
    AtomicInteger calls = new AtomicInteger();
    try (Predictor real = Predictors.load(TestModels.kmeans(tmp.resolve("km")).toString(), "kmeans", Map.of())) {
      // the first prediction throws as a broken native call would: the split runs again
      Predictor flaky = new Predictor() {
        public ModelInfo info() {
          return real.info();
        }

        public List<Tensor> predict(float[] x, int rows) throws Exception {
          if (calls.getAndIncrement() == 0) throw new IllegalStateException("transient failure");
          return real.predict(x, rows);
        }

        public long memoryBytes() {
          return real.memoryBytes();
        }

        public void close() {}
      };
      var r = TestAccess.runFile(new BatchTransform(flaky, 2), input);
      assertEquals(2, r.attempts());
      assertEquals(3, r.done());
      assertEquals(2, r.failed());
      String[] lines = new String(r.output()).split("\n");
      assertEquals(5, lines.length, "one output line per input record");
      assertTrue(lines[0].startsWith("0.0,"), lines[0]);
      assertTrue(lines[1].startsWith("1.0,"), lines[1]);
      assertTrue(lines[2].startsWith("ERROR: record 3") && lines[2].contains("'x' is not a number"), lines[2]);
      assertTrue(lines[3].startsWith("ERROR: ") && lines[3].contains("2 values"), lines[3]);
      assertTrue(lines[4].startsWith("0.0,"), lines[4]);
    }
  }
}
