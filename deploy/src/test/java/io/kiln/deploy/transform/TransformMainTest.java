package io.kiln.deploy.transform;

import static org.junit.jupiter.api.Assertions.*;

import io.kiln.deploy.TestModels;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TransformMainTest {
  @TempDir Path dir;

  private Path model() throws Exception {
    return TestModels.kmeans(dir.resolve("model"), new double[][] {{0, 0}, {10, 10}});
  }

  private static TransformMain.Options opts(Path model, Path in, Path out, int i, int n, String ct) {
    return new TransformMain.Options(model.toString(), in, out, i, n, ct, 4);
  }

  @Test
  void csvSplitsCoverEveryRowInOrderAndCountMalformedLines() throws Exception {
    Path model = model();
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < 21; i++) lines.add(i % 2 == 0 ? "0.5,0.5" : "9,9.5");
    lines.set(7, "1,abc"); // line 8 is malformed
    lines.add(12, "");     // blank lines are skipped, not counted
    Path in = dir.resolve("data.csv");
    Files.write(in, lines);
    Path out = dir.resolve("out");
    long done = 0;
    long failed = 0;
    StringBuilder all = new StringBuilder();
    StringBuilder errors = new StringBuilder();
    for (int i = 0; i < 3; i++) {
      TransformMain.Counts c = TransformMain.run(opts(model, in, out, i, 3, ""));
      done += c.done();
      failed += c.failed();
      all.append(Files.readString(out.resolve("data.csv.out.part-" + i)));
      errors.append(Files.readString(out.resolve("data.csv.errors.part-" + i)));
    }
    assertEquals(20, done);
    assertEquals(1, failed);
    assertTrue(errors.toString().startsWith("line 8: column 2: 'abc' is not a number"), errors.toString());
    String[] rows = all.toString().split("\n");
    assertEquals(20, rows.length);
    // input row k (k != 7) -> cluster k % 2; the outputs keep input order
    List<Integer> expected = new ArrayList<>();
    for (int k = 0; k < 21; k++) if (k != 7) expected.add(k % 2);
    for (int r = 0; r < rows.length; r++) assertEquals(expected.get(r), Integer.parseInt(rows[r].split(",")[0]), "row " + r);
  }

  @Test
  void jsonLinesAndWrongWidthRows() throws Exception {
    Path model = model();
    Path in = dir.resolve("data.jsonl");
    Files.write(in, List.of("{\"features\": [10, 10]}", "[0, 0]", "[1, 2, 3]", "{\"x\": 1}"));
    TransformMain.Counts c = TransformMain.run(opts(model, in, dir.resolve("o"), 0, 1, ""));
    assertEquals(new TransformMain.Counts(2, 2), c);
    assertEquals(List.of("1,0", "0,0"), Files.readAllLines(dir.resolve("o/data.jsonl.out")));
    String err = Files.readString(dir.resolve("o/data.jsonl.errors"));
    assertTrue(err.contains("line 3: ") && err.contains("line 4: expected {\"features\""), err);
  }

  @Test
  void idxImages() throws Exception {
    Path model = TestModels.kmeans(dir.resolve("m4"), new double[][] {{0, 0, 0, 0}, {255, 255, 255, 255}});
    ByteBuffer b = ByteBuffer.allocate(16 + 3 * 4);
    b.putInt(0x00000803).putInt(3).putInt(2).putInt(2);
    b.put(new byte[] {0, 0, 0, 0, (byte) 255, (byte) 250, (byte) 255, (byte) 255, 1, 2, 3, 4});
    Path in = dir.resolve("images-idx3-ubyte");
    Files.write(in, b.array());
    TransformMain.Counts c = TransformMain.run(opts(model, in, dir.resolve("o"), 0, 1, "idx"));
    assertEquals(new TransformMain.Counts(3, 0), c);
    List<String> out = Files.readAllLines(dir.resolve("o/images-idx3-ubyte.out"));
    assertEquals(List.of("0", "1", "0"), out.stream().map(l -> l.split(",")[0]).toList());
  }

  @Test
  void missingModelAndInputAreFatal() throws Exception {
    Path in = dir.resolve("d.csv");
    Files.writeString(in, "1,2\n");
    TransformMain.Fatal e = assertThrows(TransformMain.Fatal.class,
        () -> TransformMain.run(opts(dir.resolve("nope"), in, dir.resolve("o"), 0, 1, "")));
    assertTrue(e.getMessage().contains("cannot load the model") && e.getMessage().contains("nope"), e.getMessage());
    e = assertThrows(TransformMain.Fatal.class, () -> TransformMain.run(opts(model(), dir.resolve("missing.csv"), dir.resolve("o"), 0, 1, "")));
    assertTrue(e.getMessage().contains("no such input"), e.getMessage());
    assertThrows(TransformMain.Fatal.class, () -> TransformMain.parse(new String[] {"--model", "m", "--input", "i", "--output", "o", "--split", "2/2"}));
  }
}
