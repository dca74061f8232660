package io.kiln.deploy.predictor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kiln.deploy.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PredictorLoaderTest {
  @TempDir Path tmp;

  @Test
  void kmeansNearestCentroidAndDistance() throws Exception {
    Path d = TestModels.kmeans(tmp.resolve("km"), new double[][] {{0, 0}, {10, 10}});
    try (Predictor p = PredictorLoader.load(d)) {
      assertEquals("kmeans", p.type());
      float[][] out = p.predict(new float[][] {{1, 1}, {9, 12}});
      assertArrayEquals(new float[] {0, (float) Math.sqrt(2)}, out[0], 1e-5f);
      assertArrayEquals(new float[] {1, (float) Math.sqrt(5)}, out[1], 1e-5f);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> p.predict(new float[][] {{1, 2, 3}}));
      assertTrue(e.getMessage().contains("has 3 features; the model takes 2"), e.getMessage());
    }
  }

  @Test
  void linearSoftmaxAndSigmoid() throws Exception {
    Path d = TestModels.linear(tmp.resolve("lin"), "softmax", new double[][] {{1, 0}, {0, 1}, {0, 0}}, new double[] {0, 0, 0});
    try (Predictor p = PredictorLoader.load(d)) {
      float[] r = p.predict(new float[][] {{2, 0}})[0];
      double e2 = Math.exp(2);
      assertEquals(0, r[0]); // predicted label
      assertEquals(e2 / (e2 + 2), r[1], 1e-6);
    }
    Path b = TestModels.linear(tmp.resolve("bin"), "sigmoid", new double[][] {{1, -1}}, new double[] {0.5});
    try (Predictor p = PredictorLoader.load(b)) {
      float[] r = p.predict(new float[][] {{0, 3}})[0];
      assertEquals(0, r[0]);
      assertEquals(1 / (1 + Math.exp(2.5)), r[1], 1e-6);
    }
  }

  @Test
  void pcaProjects() throws Exception {
    Path d = TestModels.pca(tmp.resolve("pca"), new double[] {1, 1}, new double[][] {{1, 0}, {0, 2}});
    try (Predictor p = PredictorLoader.load(d)) {
      assertArrayEquals(new float[] {2, -2}, p.predict(new float[][] {{3, 0}})[0], 1e-6f);
    }
  }

  @Test
  void knnMajorityVote() throws Exception {
    Path d = TestModels.knn(tmp.resolve("knn"), new float[][] {{0, 0}, {0, 1}, {1, 0}, {10, 10}, {10, 11}},
        new float[] {3, 3, 3, 7, 7}, 3);
    try (Predictor p = PredictorLoader.load(d)) {
      float[][] out = p.predict(new float[][] {{0.2f, 0.1f}, {9, 9}});
      assertEquals(3, out[0][0]);
      assertEquals(7, out[1][0]);
    }
  }

  @Test
  void xgboostTrainedInTestSeparatesClasses() throws Exception {
    float[][] x = new float[40][];
    float[] y = new float[40];
    for (int i = 0; i < 40; i++) {
      x[i] = new float[] {i, (i * 7) % 5};
      y[i] = i < 20 ? 0 : 1;
    }
    Path d = TestModels.xgboost(tmp.resolve("xgb"), x, y, "binary:logistic");
    try (Predictor p = PredictorLoader.load(d)) {
      float[][] out = p.predict(new float[][] {{2, 1}, {35, 0}});
      assertTrue(out[0][0] < 0.2 && out[1][0] > 0.8, out[0][0] + " " + out[1][0]);
    }
  }

  @Test
  void torchScriptExportedByPython() throws Exception {
    Path pt = TestModels.torchScript(tmp.resolve("ts"));
    assumeTrue(pt != null, "skipped: /usr/bin/python3 with torch is not installed (apt-get install python3-torch)");
    try (Predictor p = PredictorLoader.load(pt.getParent())) {
      assertEquals("torchscript", p.type());
      float[] r = p.predict(new float[][] {{1, 0, 0, 1}})[0];
      // row o of W is (4o, 4o+1, 4o+2, 4o+3)/10: x . W_o = (8o + 3)/10, plus b
      assertArrayEquals(new float[] {0.3f + 1, 1.1f - 1, 1.9f + 0.5f}, r, 1e-5f);
    }
  }

  @Test
  void corruptAndMissingFilesAreNamed() throws Exception {
    Path d = TestModels.kmeans(tmp.resolve("bad"), new double[][] {{0, 0}, {1, 1}});
    Files.write(d.resolve("centroids.f32"), new byte[5]);
    ModelLoadException e = assertThrows(ModelLoadException.class, () -> PredictorLoader.load(d));
    assertTrue(e.getMessage().contains("centroids.f32") && e.getMessage().contains("corrupt"), e.getMessage());
    Files.delete(d.resolve("centroids.f32"));
    e = assertThrows(ModelLoadException.class, () -> PredictorLoader.load(d));
    assertTrue(e.getMessage().contains("centroids.f32: missing"), e.getMessage());
    Files.writeString(d.resolve("kiln-model.json"), "{not json");
    e = assertThrows(ModelLoadException.class, () -> PredictorLoader.load(d));
    assertTrue(e.getMessage().contains("kiln-model.json: corrupt JSON"), e.getMessage());
    Path x = tmp.resolve("xgb-bad");
    Files.createDirectories(x);
    Files.writeString(x.resolve("kiln-model.json"), "{\"format\":\"kiln-xgboost-v1\",\"model_file\":\"model.json\",\"num_features\":2}");
    Files.writeString(x.resolve("model.json"), "{\"learner\": 42}");
    e = assertThrows(ModelLoadException.class, () -> PredictorLoader.load(x));
    assertTrue(e.getMessage().contains("model.json: not a loadable XGBoost model"), e.getMessage());
    Files.writeString(tmp.resolve("broken.pt"), "garbage");
    e = assertThrows(ModelLoadException.class, () -> PredictorLoader.load(tmp.resolve("broken.pt")));
    assertTrue(e.getMessage().contains("broken.pt: not a loadable TorchScript model"), e.getMessage());
    e = assertThrows(ModelLoadException.class, () -> PredictorLoader.load(tmp.resolve("nowhere")));
    assertTrue(e.getMessage().contains("nowhere: no such model folder"), e.getMessage());
  }
}
