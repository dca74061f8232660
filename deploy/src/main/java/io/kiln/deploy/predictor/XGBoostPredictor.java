package io.kiln.deploy.predictor;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.worker.algorithms.xgboost.XGBoostNative;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import ml.dmlc.xgboost4j.java.Booster;
import ml.dmlc.xgboost4j.java.DMatrix;
import ml.dmlc.xgboost4j.java.XGBoost;
import ml.dmlc.xgboost4j.java.XGBoostError;

/**
 * The xgboost built-in (or an imported XGBoost JSON/UBJ model): XGBoost4J's Booster on the saved
 * model file. Outputs what {@code Booster.predict} gives: one column for regression and binary
 * objectives, {@code num_class} probabilities for multi:softprob. Missing values are NaN.
 */
final class XGBoostPredictor implements Predictor {
  private final Booster booster;
  private final int width;
  private final boolean pixels;

  private XGBoostPredictor(Booster booster, int width, boolean pixels) {
    this.booster = booster;
    this.width = width;
    this.pixels = pixels;
  }

  static XGBoostPredictor load(Path folder, JsonNode d, Path descriptor) throws ModelLoadException {
    Path file = folder.resolve(d.path("model_file").asText("model.json"));
    if (!Files.isRegularFile(file)) throw new ModelLoadException(file, "missing");
    XGBoostNative.ensureLoaded();
    try {
      Booster b = XGBoost.loadModel(file.toString());
      int width = d.has("num_features") ? d.get("num_features").asInt() : (int) b.getNumFeature();
      return new XGBoostPredictor(b, width, ModelFiles.pixelScaled(d));
    } catch (XGBoostError | RuntimeException e) {
      throw new ModelLoadException(file, "not a loadable XGBoost model", e);
    }
  }

  @Override
  public float[][] predict(float[][] rows) throws XGBoostError {
    Predictor.checkWidth(rows, width);
    float[] flat = new float[rows.length * width];
    for (int i = 0; i < rows.length; i++) {
      for (int j = 0; j < width; j++) flat[i * width + j] = pixels ? rows[i][j] / 255f : rows[i][j];
    }
    DMatrix m = new DMatrix(flat, rows.length, width, Float.NaN);
    try {
      return booster.predict(m);
    } finally {
      m.dispose();
    }
  }

  @Override
  public String type() {
    return "xgboost";
  }

  @Override
  public int inputWidth() {
    return width;
  }

  @Override
  public List<String> outputNames() {
    return List.of();
  }

  @Override
  public void close() {
    booster.dispose();
  }
}
