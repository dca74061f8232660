package io.kiln.deploy.predictor;

import java.util.List;

/**
 * A predictor computed row by row in Java (the built-ins other than XGBoost): no native state, so
 * concurrent calls are safe and {@link #close} has nothing to free.
 */
abstract class RowPredictor implements Predictor {
  private final String type;
  private final int width;
  private final boolean pixels;
  private final List<String> outputNames;

  RowPredictor(String type, int width, boolean pixels, List<String> outputNames) {
    this.type = type;
    this.width = width;
    this.pixels = pixels;
    this.outputNames = outputNames;
  }

  /** The outputs of one row (already scaled). */
  abstract float[] predictRow(double[] x);

  @Override
  public final float[][] predict(float[][] rows) {
    Predictor.checkWidth(rows, width);
    float[][] out = new float[rows.length][];
    double[] x = new double[width];
    for (int i = 0; i < rows.length; i++) {
      for (int j = 0; j < width; j++) x[j] = pixels ? rows[i][j] / 255.0 : rows[i][j];
      out[i] = predictRow(x);
    }
    return out;
  }

  @Override
  public String type() {
    return type;
  }

  @Override
  public int inputWidth() {
    return width;
  }

  @Override
  public List<String> outputNames() {
    return outputNames;
  }

  @Override
  public void close() {}
}
