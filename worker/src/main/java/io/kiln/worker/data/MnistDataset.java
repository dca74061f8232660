package io.kiln.worker.data;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * An image-classification split held in memory: {@code size} images of {@code rows x cols} unsigned
 * bytes and their labels. {@link #images(NDManager)} makes the whole split one float NDArray
 * (pixels scaled to [0,1]) so training can take batches by index without per-sample overhead.
 */
public record MnistDataset(String source, int size, int rows, int cols, byte[] pixels, int[] labels, int numClasses) {

  public static final String TRAIN_IMAGES = "train-images-idx3-ubyte";
  public static final String TRAIN_LABELS = "train-labels-idx1-ubyte";
  public static final String TEST_IMAGES = "t10k-images-idx3-ubyte";
  public static final String TEST_LABELS = "t10k-labels-idx1-ubyte";

  public static final List<String> FASHION_CLASSES = List.of(
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot");
  public static final List<String> DIGIT_CLASSES = List.of("0", "1", "2", "3", "4", "5", "6", "7", "8", "9");

  /** The train and test splits of one data set. */
  public record Splits(MnistDataset train, MnistDataset test, List<String> classNames) {}

  /** Loads the training split (the train-* files) from a folder. */
  public static MnistDataset loadTrain(Path dir) throws DataException {
    return load(dir, TRAIN_IMAGES, TRAIN_LABELS);
  }

  /** Loads the test split (the t10k-* files) from a folder. */
  public static MnistDataset loadTest(Path dir) throws DataException {
    return load(dir, TEST_IMAGES, TEST_LABELS);
  }

  /**
   * Loads both splits for a job: {@code trainUri} is the {@code train} channel (folder path or
   * {@code file:} URI); {@code testUri} (the {@code test} channel) may be null or empty, in which case
   * the t10k files are read from the train folder.
   */
  public static Splits load(String trainUri, String testUri) throws DataException {
    Path trainDir = DataLocations.directory("train", trainUri);
    Path testDir = testUri == null || testUri.isBlank() ? trainDir : DataLocations.directory("test", testUri);
    MnistDataset train = loadTrain(trainDir);
    MnistDataset test = loadTest(testDir);
    if (train.rows != test.rows || train.cols != test.cols) {
      throw new DataException("test images in " + testDir + " are " + test.rows + "x" + test.cols
          + " but training images in " + trainDir + " are " + train.rows + "x" + train.cols);
    }
    return new Splits(train, test, defaultClassNames(trainDir));
  }

  /** Fashion-MNIST's names when the folder says so, else the digits. */
  public static List<String> defaultClassNames(Path dir) {
    return dir.toString().toLowerCase(Locale.ROOT).contains("fashion") ? FASHION_CLASSES : DIGIT_CLASSES;
  }

  static MnistDataset load(Path dir, String imagesName, String labelsName) throws DataException {
    if (!Files.isDirectory(dir)) throw new DataException("data directory " + dir + " does not exist");
    Path imagesFile = locate(dir, imagesName);
    Path labelsFile = locate(dir, labelsName);
    IdxReader.Images images = IdxReader.readImages(imagesFile);
    int[] labels = IdxReader.readLabels(labelsFile);
    if (labels.length != images.count()) {
      throw new DataException(labelsFile + ": " + labels.length + " labels but " + imagesFile + " has "
          + images.count() + " images");
    }
    int numClasses = 10;
    for (int i = 0; i < labels.length; i++) {
      if (labels[i] >= numClasses) {
        throw new DataException(labelsFile + ": label " + labels[i] + " at index " + i + " is outside 0.."
            + (numClasses - 1));
      }
    }
    return new MnistDataset(dir.toString(), images.count(), images.rows(), images.cols(), images.pixels(), labels,
        numClasses);
  }

  /** {@code dir/name} or {@code dir/name.gz}, whichever exists (the raw file first). */
  static Path locate(Path dir, String name) throws DataException {
    Path raw = dir.resolve(name);
    if (Files.exists(raw)) return raw;
    Path gz = dir.resolve(name + ".gz");
    if (Files.exists(gz)) return gz;
    throw new DataException("missing " + name + "(.gz) in " + dir);
  }

  public int pixelsPerImage() {
    return rows * cols;
  }

  /** All images as one float32 NDArray of shape (size, rows*cols), pixels scaled to [0,1]. */
  public NDArray images(NDManager manager) {
    ByteBuffer buf = ByteBuffer.allocateDirect(pixels.length);
    buf.put(pixels).flip();
    try (NDArray raw = manager.create(buf, new Shape(size, (long) rows * cols), DataType.UINT8)) {
      NDArray f = raw.toType(DataType.FLOAT32, false);
      return f.divi(255f);
    }
  }

  /** All labels as one int64 NDArray of shape (size). */
  public NDArray labels(NDManager manager) {
    long[] l = new long[labels.length];
    for (int i = 0; i < l.length; i++) l[i] = labels[i];
    return manager.create(l);
  }

  /** Pixel {@code p} of image {@code i} scaled to [0,1]. */
  public float pixel(int i, int p) {
    return (pixels[i * pixelsPerImage() + p] & 0xff) / 255f;
  }
}
