package io.kiln.deploy.predictor;

/**
 * A loaded model that turns rows of float features into rows of float outputs. Implementations are
 * safe for concurrent {@link #predict} calls (the server calls them from many threads) and are closed
 * once, after the last call, when the model is unloaded.
 */
public interface Predictor extends AutoCloseable {

  /** The model type, e.g. {@code mlp}, {@code xgboost}, {@code torchscript}. */
  String type();

  /** Features per input row, or -1 when the model does not say (TorchScript). */
  int inputWidth();

  /** What each output column means, e.g. {@code ["predicted_label", "p0", "p1"]} (empty when unnamed). */
  java.util.List<String> outputNames();

  /**
   * Predicts every row. Throws {@link IllegalArgumentException} for input the model cannot take (wrong
   * width), with a message that can be shown to the caller.
   */
  float[][] predict(float[][] rows) throws Exception;

  @Override
  void close();

  /** Checks every row has {@code width} features (width -1: all rows equally wide). */
  static void checkWidth(float[][] rows, int width) {
    if (rows.length == 0) throw new IllegalArgumentException("no input rows");
    int w = width < 0 ? rows[0].length : width;
    for (int i = 0; i < rows.length; i++) {
      if (rows[i].length != w) {
        throw new IllegalArgumentException("row " + i + " has " + rows[i].length + " features; the model takes " + w);
      }
    }
  }
}
