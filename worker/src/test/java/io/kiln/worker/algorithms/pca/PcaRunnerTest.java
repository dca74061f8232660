package io.kiln.worker.algorithms.pca;

import static io.kiln.worker.algorithms.BuiltinHarness.assertContains;
import static io.kiln.worker.algorithms.BuiltinHarness.completed;
import static io.kiln.worker.algorithms.BuiltinHarness.csv;
import static io.kiln.worker.algorithms.BuiltinHarness.failed;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.worker.algorithms.BuiltinHarness;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import org.apache.commons.math3.linear.Array2DRowRealMatrix;
import org.apache.commons.math3.linear.SingularValueDecomposition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** pca against Apache Commons Math's SVD of the centred data; ranks; bad input. */
class PcaRunnerTest {
  @TempDir Path tmp;

  /** Rows of rank-{@code r} structure with decaying scales plus small noise, offset from 0 (float32-exact). */
  static double[][] data(int n, int d, int r, long seed) {
    Random rnd = new Random(seed);
    double[][] basis = new double[r][d];
    for (double[] b : basis) for (int j = 0; j < d; j++) b[j] = rnd.nextGaussian();
    double[][] x = new double[n][d];
    for (int i = 0; i < n; i++) {
      for (int c = 0; c < r; c++) {
        double z = rnd.nextGaussian() * 10 / (c + 1);
        for (int j = 0; j < d; j++) x[i][j] += z * basis[c][j];
      }
      for (int j = 0; j < d; j++) x[i][j] = (float) (x[i][j] + 0.05 * rnd.nextGaussian() + j);
    }
    return x;
  }

  /** Commons Math's SVD of the centred rows: {singular values, right singular vectors as rows}. */
  static double[][][] reference(double[][] x) {
    int d = x[0].length;
    double[] mean = new double[d];
    for (double[] r : x) for (int j = 0; j < d; j++) mean[j] += r[j] / x.length;
    double[][] c = new double[x.length][d];
    for (int i = 0; i < x.length; i++) for (int j = 0; j < d; j++) c[i][j] = x[i][j] - mean[j];
    SingularValueDecomposition svd = new SingularValueDecomposition(new Array2DRowRealMatrix(c, false));
    return new double[][][] {{svd.getSingularValues()}, svd.getVT().getData()};
  }

  static JsonObject model(Path job) throws Exception {
    return JsonParser.parseString(Files.readString(job.resolve("model/model.json"))).getAsJsonObject();
  }

  /** Singular values within {@code relTol}, components parallel within {@code cosTol} (any sign). */
  static void assertMatches(double[][][] ref, JsonObject m, int k, double relTol, double cosTol) {
    JsonArray sv = m.getAsJsonArray("singular_values");
    JsonArray comps = m.getAsJsonArray("components");
    for (int c = 0; c < k; c++) {
      double want = ref[0][0][c];
      assertEquals(want, sv.get(c).getAsDouble(), relTol * want, "singular value " + c);
      JsonArray v = comps.get(c).getAsJsonArray();
      double dot = 0;
      for (int j = 0; j < v.size(); j++) dot += v.get(j).getAsDouble() * ref[1][c][j];
      assertEquals(1.0, Math.abs(dot), cosTol, "component " + c);
    }
  }

  @Test
  void regularMatchesTheSvd() throws Exception {
    double[][] x = data(300, 8, 4, 1);
    Map<String, String> ch = Map.of("train", csv(tmp.resolve("d/train.csv"), null, x).toString());
    Map<String, Double> m = completed(BuiltinHarness.run(PcaRunner.NAME, ch, tmp.resolve("j"), "num_components", "3"));
    JsonObject model = model(tmp.resolve("j"));
    assertMatches(reference(x), model, 3, 1e-9, 1e-9);
    double[][][] ref = reference(x);
    double all = 0;
    for (double s : ref[0][0]) all += s * s;
    double top = 0;
    for (int c = 0; c < 3; c++) top += ref[0][0][c] * ref[0][0][c];
    assertEquals(top / all, m.get("explained_variance_ratio"), 1e-9);
    assertEquals((all - top) / 300, m.get("train_reconstruction_error"), 1e-6 * all / 300);
    assertEquals(ref[0][0][0] * ref[0][0][0] / 299, model.getAsJsonArray("explained_variance").get(0).getAsDouble(),
        1e-9 * ref[0][0][0] * ref[0][0][0]);
    double mean7 = 0;
    for (double[] r : x) mean7 += r[7] / x.length;
    assertEquals(mean7, model.getAsJsonArray("mean").get(7).getAsDouble(), 1e-9);
  }

  @Test
  void randomizedMatchesTheSvd() throws Exception {
    double[][] x = data(400, 60, 5, 2);
    Map<String, String> ch = Map.of("train", csv(tmp.resolve("d/train.csv"), null, x).toString());
    completed(BuiltinHarness.run(PcaRunner.NAME, ch, tmp.resolve("j"), "num_components", "5", "algorithm_mode",
        "randomized", "extra_components", "5", "power_iterations", "2"));
    assertMatches(reference(x), model(tmp.resolve("j")), 5, 1e-6, 1e-6);
  }

  @Test
  void twoRanksComputeTheOneRankComponents() throws Exception {
    double[][] x = data(201, 10, 3, 3);
    Map<String, String> ch = Map.of("train", csv(tmp.resolve("d/train.csv"), null, x).toString());
    for (String mode : new String[] {"regular", "randomized"}) {
      completed(BuiltinHarness.run(PcaRunner.NAME, ch, tmp.resolve("one-" + mode), "num_components", "3",
          "algorithm_mode", mode));
      var two = BuiltinHarness.runRanks(2, PcaRunner.NAME, ch, tmp.resolve("two-" + mode), "num_components", "3",
          "algorithm_mode", mode);
      Map<String, Double> r0 = completed(two.get(0));
      assertEquals(r0.get("explained_variance_ratio"), completed(two.get(1)).get("explained_variance_ratio"), 0.0);
      JsonObject a = model(tmp.resolve("one-" + mode));
      JsonObject b = model(tmp.resolve("two-" + mode));
      for (int c = 0; c < 3; c++) {
        JsonArray va = a.getAsJsonArray("components").get(c).getAsJsonArray();
        JsonArray vb = b.getAsJsonArray("components").get(c).getAsJsonArray();
        for (int j = 0; j < va.size(); j++) assertEquals(va.get(j).getAsDouble(), vb.get(j).getAsDouble(), 1e-9);
      }
    }
  }

  @Test
  void badInput() throws Exception {
    Path f = csv(tmp.resolve("d/train.csv"), null, data(5, 3, 1, 4));
    Map<String, String> ch = Map.of("train", f.toString());
    assertContains(failed(BuiltinHarness.run(PcaRunner.NAME, ch, tmp.resolve("a"), "algorithm_mode", "exact",
        "num_component", "2")), "num_components is required", "algorithm_mode 'exact' is not one of regular, randomized",
        "unknown hyperparameter num_component");
    assertContains(failed(BuiltinHarness.run(PcaRunner.NAME, ch, tmp.resolve("b"), "num_components", "4")),
        "num_components 4 is larger than the 3 features");
    assertContains(failed(BuiltinHarness.run(PcaRunner.NAME, ch, tmp.resolve("c"), "num_components", "0")),
        "num_components 0 is out of range");
    Files.writeString(tmp.resolve("d/bad.csv"), "1,2\n3\n");
    assertContains(failed(BuiltinHarness.run(PcaRunner.NAME, Map.of("train", tmp.resolve("d/bad.csv").toString()),
        tmp.resolve("e"), "num_components", "1")), "bad.csv:2");
  }
}
