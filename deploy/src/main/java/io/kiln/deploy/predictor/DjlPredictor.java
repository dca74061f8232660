package io.kiln.deploy.predictor;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.translate.NoopTranslator;
import io.kiln.worker.training.ModelArtifacts;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * DJL PyTorch models: Kiln's own mlp/cnn ({@code model.json} format kiln-djl-v1, rebuilt by the
 * worker's {@link ModelArtifacts#load}) and TorchScript files ({@code .pt}, loaded by DJL's PyTorch
 * engine as they are). Outputs the network's output row (logits for Kiln's classifiers).
 */
final class DjlPredictor implements Predictor {
  private final Model model;
  private final String type;
  private final long[] inputShape; // per row, without the batch dimension; null = the row as given
  private final boolean pixels;
  private final int width;

  private DjlPredictor(Model model, String type, long[] inputShape, boolean pixels) {
    this.model = model;
    this.type = type;
    this.inputShape = inputShape;
    this.pixels = pixels;
    long w = 1;
    if (inputShape != null) for (long d : inputShape) w *= d;
    this.width = inputShape == null ? -1 : (int) w;
  }

  /** A Kiln mlp/cnn folder (model.json + model-0000.params). */
  static DjlPredictor loadKiln(Path folder) throws ModelLoadException {
    Path json = folder.resolve(ModelArtifacts.MODEL_JSON);
    try {
      ModelArtifacts.Description d = ModelArtifacts.readDescription(folder);
      Model m = ModelArtifacts.load(folder);
      return new DjlPredictor(m, d.algorithm(), d.inputShape().getShape(), true);
    } catch (IOException | RuntimeException e) {
      throw new ModelLoadException(json, "cannot load the DJL model", e);
    }
  }

  /** A TorchScript file. */
  static DjlPredictor loadTorchScript(Path file) throws ModelLoadException {
    if (!Files.isRegularFile(file)) throw new ModelLoadException(file, "missing");
    String name = file.getFileName().toString().replaceFirst("\\.pt$", "");
    Model m = Model.newInstance(name, Device.cpu(), "PyTorch");
    try {
      m.load(file.getParent(), name);
      return new DjlPredictor(m, "torchscript", null, false);
    } catch (Exception e) {
      m.close();
      throw new ModelLoadException(file, "not a loadable TorchScript model", e);
    }
  }

  @Override
  public float[][] predict(float[][] rows) throws Exception {
    Predictor.checkWidth(rows, width);
    int n = rows.length;
    int w = rows[0].length;
    float[] flat = new float[n * w];
    for (int i = 0; i < n; i++) {
      for (int j = 0; j < w; j++) flat[i * w + j] = pixels ? rows[i][j] / 255f : rows[i][j];
    }
    Shape shape = inputShape == null ? new Shape(n, w) : new Shape(n).addAll(new Shape(inputShape));
    // A predictor per call: DJL predictors are not meant to be shared between threads; creating one is cheap.
    try (NDManager mgr = model.getNDManager().newSubManager();
        ai.djl.inference.Predictor<NDList, NDList> p = model.newPredictor(new NoopTranslator())) {
      NDList out = p.predict(new NDList(mgr.create(flat, shape)));
      NDArray y = out.singletonOrThrow();
      float[] v = y.toType(ai.djl.ndarray.types.DataType.FLOAT32, false).toFloatArray();
      int cols = (int) (v.length / n);
      float[][] res = new float[n][cols];
      for (int i = 0; i < n; i++) System.arraycopy(v, i * cols, res[i], 0, cols);
      out.close();
      return res;
    }
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
    return List.of();
  }

  @Override
  public void close() {
    model.close();
  }
}
