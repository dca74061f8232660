package io.kiln.worker.algorithms.data;

import io.kiln.worker.data.DataException;
import io.kiln.worker.data.DataLocations;
import io.kiln.worker.data.MnistDataset;
import io.kiln.worker.training.StopSignal;
import java.io.BufferedInputStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;

/**
 * Reads a channel (a file, or a folder of files read in name order) into a {@link Table}: CSV,
 * libsvm (both plain or gzip, detected by content) or IDX. Every problem is a
 * {@link DataException} naming the file and, for text formats, the line.
 */
public final class TableReader {
  private static final int STOP_CHECK_LINES = 8192;

  private TableReader() {}

  /** How to read: at most {@code maxRows} rows (0 = all); CSV's second column is the weight if {@code csvWeights}. */
  public record Options(int maxRows, boolean csvWeights, StopSignal stop) {
    public static Options defaults() {
      return new Options(0, false, new StopSignal());
    }
  }

  // ---------------------------------------------------------------- locating and sniffing

  /** IDX folder of a channel, if it holds MNIST-style files (train-* or t10k-*), else null. */
  public static Path idxFolder(String channel, String uri) throws DataException {
    Path p = DataLocations.toPath(channel, uri);
    Path dir = Files.isDirectory(p) ? p : p.getParent();
    if (dir == null || !Files.isDirectory(dir)) return null;
    if (Files.isRegularFile(p) && !p.getFileName().toString().contains("-idx")) return null;
    for (String name : List.of(MnistDataset.TRAIN_IMAGES, MnistDataset.TEST_IMAGES)) {
      if (Files.exists(dir.resolve(name)) || Files.exists(dir.resolve(name + ".gz"))) return dir;
    }
    return null;
  }

  /**
   * The data files of a channel: the file itself, or the regular files of the folder in name order
   * (hidden files and {@code README*} skipped).
   */
  public static List<Path> files(String channel, String uri) throws DataException {
    Path p = DataLocations.toPath(channel, uri);
    if (Files.isRegularFile(p)) return List.of(p);
    if (!Files.isDirectory(p)) throw new DataException("channel '" + channel + "': " + p + " does not exist");
    List<Path> out = new ArrayList<>();
    try (Stream<Path> s = Files.list(p)) {
      s.filter(Files::isRegularFile).filter(f -> {
        String n = f.getFileName().toString();
        return !n.startsWith(".") && !n.startsWith("README") && !n.startsWith("_");
      }).sorted().forEach(out::add);
    } catch (IOException e) {
      throw new DataException("channel '" + channel + "': cannot list " + p + ": " + e.getMessage(), e);
    }
    if (out.isEmpty()) throw new DataException("channel '" + channel + "': " + p + " holds no data files");
    return out;
  }

  /**
   * Guesses a channel's format: IDX when it holds train-/t10k- IDX files; else by the first data
   * file's name ({@code .csv}, {@code .libsvm}, {@code .svm}, optionally {@code .gz}); else by its
   * first non-blank line ({@code index:value} pairs after the label mean libsvm, otherwise CSV).
   */
  public static TableFormat detect(String channel, String uri) throws DataException {
    if (idxFolder(channel, uri) != null) return TableFormat.IDX;
    Path first = files(channel, uri).get(0);
    String name = first.getFileName().toString().toLowerCase(Locale.ROOT);
    if (name.endsWith(".gz")) name = name.substring(0, name.length() - 3);
    if (name.endsWith(".csv")) return TableFormat.CSV;
    if (name.endsWith(".libsvm") || name.endsWith(".svm")) return TableFormat.LIBSVM;
    try (BufferedReader r = open(first)) {
      String line;
      while ((line = r.readLine()) != null) {
        line = stripComment(line).trim();
        if (line.isEmpty()) continue;
        String[] tokens = line.split("[ \t]+");
        if (tokens.length > 1 && tokens[1].indexOf(':') > 0) return TableFormat.LIBSVM;
        if (line.indexOf(',') >= 0 || tokens.length == 1) return TableFormat.CSV;
        break;
      }
    } catch (IOException e) {
      throw new DataException(first + ": cannot read: " + e.getMessage(), e);
    }
    throw new DataException("channel '" + channel + "': cannot tell the format of " + first
        + ": set the hyperparameter content_type to text/csv, text/libsvm or application/x-idx");
  }

  // ---------------------------------------------------------------- IDX

  /** One IDX split ({@code test}: the t10k-* files, else train-*) of a folder: pixels / 255, dense. */
  public static Table readIdx(Path dir, boolean test, int maxRows) throws DataException {
    MnistDataset d = test ? MnistDataset.loadTest(dir) : MnistDataset.loadTrain(dir);
    int n = maxRows > 0 ? Math.min(maxRows, d.size()) : d.size();
    int cols = d.pixelsPerImage();
    float[] x = new float[n * cols];
    byte[] px = d.pixels();
    for (int i = 0; i < x.length; i++) x[i] = (px[i] & 0xff) / 255f;
    float[] y = new float[n];
    for (int i = 0; i < n; i++) y[i] = d.labels()[i];
    String which = test ? MnistDataset.TEST_IMAGES : MnistDataset.TRAIN_IMAGES;
    return Table.dense(dir.resolve(which).toString(), n, cols, x, y);
  }

  /** Whether an IDX folder has the t10k-* (test) files. */
  /** The training images of an IDX channel and its validation set, with the folder they came from. */
  public record IdxChannels(Path trainDir, Table train, Table validation) {}

  /**
   * Reads IDX training data from the {@code train} channel and the validation set: the
   * {@code validation} channel when given (its t10k files if it has them), else the train folder's
   * t10k files, else none.
   */
  public static IdxChannels readIdxChannels(String trainUri, String validationUri, int maxRows,
      io.kiln.worker.training.StopSignal stop) throws DataException {
    Path dir = idxFolder("train", trainUri);
    if (dir == null) dir = io.kiln.worker.data.DataLocations.directory("train", trainUri);
    Table train = readIdx(dir, false, maxRows);
    stop.check();
    Table validation = null;
    if (!validationUri.isBlank()) {
      Path vdir = idxFolder("validation", validationUri);
      if (vdir == null) vdir = io.kiln.worker.data.DataLocations.directory("validation", validationUri);
      validation = readIdx(vdir, hasIdxTest(vdir), 0);
    } else if (hasIdxTest(dir)) {
      validation = readIdx(dir, true, 0);
    }
    if (validation != null && validation.cols() != train.cols()) {
      throw new DataException(validation.source() + ": images have " + validation.cols() + " pixels, the training "
          + "images " + train.cols());
    }
    return new IdxChannels(dir, train, validation);
  }

  public static boolean hasIdxTest(Path dir) {
    return (Files.exists(dir.resolve(MnistDataset.TEST_IMAGES)) || Files.exists(dir.resolve(MnistDataset.TEST_IMAGES
        + ".gz"))) && (Files.exists(dir.resolve(MnistDataset.TEST_LABELS))
        || Files.exists(dir.resolve(MnistDataset.TEST_LABELS + ".gz")));
  }

  // ---------------------------------------------------------------- text formats

  /** Reads a channel in a text format (CSV or libsvm). */
  public static Table read(String channel, String uri, TableFormat format, Options options) throws DataException {
    List<Path> files = files(channel, uri);
    Table t;
    switch (format) {
      case CSV:
        t = readCsv(files, options);
        break;
      case LIBSVM:
        t = readLibsvm(files, options);
        break;
      default:
        throw new IllegalArgumentException("read() takes text formats; use readIdx for " + format);
    }
    if (t.rows() == 0) {
      throw new DataException("channel '" + channel + "': no data rows in " + describe(files));
    }
    return t;
  }

  /** CSV: label first, no header; every row must have as many columns as the first. */
  public static Table readCsv(List<Path> files, Options o) throws DataException {
    FloatList x = new FloatList(1 << 16);
    FloatList y = new FloatList(1 << 10);
    FloatList w = o.csvWeights() ? new FloatList(1 << 10) : null;
    int fields = -1;
    String firstRowAt = null;
    int rows = 0;
    int skip = o.csvWeights() ? 2 : 1;
    outer:
    for (Path f : files) {
      try (BufferedReader r = open(f)) {
        String line;
        int lineNo = 0;
        while ((line = r.readLine()) != null) {
          lineNo++;
          if ((lineNo & (STOP_CHECK_LINES - 1)) == 0) o.stop().check();
          if (line.isBlank()) continue;
          int n = countFields(line);
          if (fields < 0) {
            fields = n;
            firstRowAt = f.getFileName() + " line " + lineNo;
            if (fields <= skip) {
              throw new DataException(f + ":" + lineNo + ": a row needs the label" + (o.csvWeights() ? ", the weight"
                  : "") + " and at least one feature, this one has " + n + " column" + (n == 1 ? "" : "s"));
            }
          } else if (n != fields) {
            throw new DataException(f + ":" + lineNo + ": " + n + " columns, but the first row (" + firstRowAt
                + ") has " + fields);
          }
          int start = 0;
          for (int c = 0; c < fields; c++) {
            int end = line.indexOf(',', start);
            if (end < 0) end = line.length();
            String tok = line.substring(start, end).trim();
            start = end + 1;
            if (c == 0) {
              float v = parse(tok);
              if (Float.isNaN(v)) {
                throw new DataException(f + ":" + lineNo + ": the label (first column) " + (tok.isEmpty() ? "is empty"
                    : "'" + abbreviate(tok) + "' is not a number") + " (CSV input has the label in the first column "
                    + "and no header row)");
              }
              y.add(v);
            } else if (c == 1 && w != null) {
              float v = parse(tok);
              if (Float.isNaN(v) || v < 0) {
                throw new DataException(f + ":" + lineNo + ": the weight (second column, csv_weights=1) '"
                    + abbreviate(tok) + "' is not a non-negative number");
              }
              w.add(v);
            } else {
              float v = parse(tok);
              if (Float.isNaN(v) && !isMissing(tok)) {
                throw new DataException(f + ":" + lineNo + ": column " + (c + 1) + ": '" + abbreviate(tok)
                    + "' is not a number");
              }
              x.add(v);
            }
          }
          rows++;
          if (o.maxRows() > 0 && rows >= o.maxRows()) break outer;
        }
      } catch (DataException e) {
        throw e;
      } catch (IOException e) {
        throw new DataException(f + ": cannot read: " + e.getMessage(), e);
      }
    }
    if (rows == 0) return Table.dense(describe(files), 0, 0, new float[0], new float[0]);
    return Table.dense(describe(files), rows, fields - skip, x.toArray(), y.toArray(), w == null ? null : w.toArray());
  }

  /** libsvm: {@code label[:weight] [qid:q] index:value ...} with 0- or 1-based indices (kept as given). */
  public static Table readLibsvm(List<Path> files, Options o) throws DataException {
    LongList indptr = new LongList(1 << 10);
    indptr.add(0);
    IntList idx = new IntList(1 << 16);
    FloatList val = new FloatList(1 << 16);
    FloatList y = new FloatList(1 << 10);
    FloatList w = null;
    IntList groups = null;
    long lastQid = Long.MIN_VALUE;
    int maxIndex = -1;
    int rows = 0;
    outer:
    for (Path f : files) {
      try (BufferedReader r = open(f)) {
        String line;
        int lineNo = 0;
        while ((line = r.readLine()) != null) {
          lineNo++;
          if ((lineNo & (STOP_CHECK_LINES - 1)) == 0) o.stop().check();
          line = stripComment(line);
          if (line.isBlank()) continue;
          String[] tok = line.trim().split("[ \t]+");
          String label = tok[0];
          int colon = label.indexOf(':');
          String weight = null;
          if (colon >= 0) {
            weight = label.substring(colon + 1);
            label = label.substring(0, colon);
          }
          float lv = parse(label);
          if (Float.isNaN(lv)) {
            throw new DataException(f + ":" + lineNo + ": the label '" + abbreviate(label) + "' is not a number");
          }
          y.add(lv);
          if (weight != null) {
            float wv = parse(weight);
            if (Float.isNaN(wv) || wv < 0) {
              throw new DataException(f + ":" + lineNo + ": the weight '" + abbreviate(weight)
                  + "' is not a non-negative number");
            }
            if (w == null) {
              if (rows > 0) {
                throw new DataException(f + ":" + lineNo + ": this row has a weight (label:weight) but earlier rows "
                    + "have none: give every row a weight or none");
              }
              w = new FloatList(1 << 10);
            }
            w.add(wv);
          } else if (w != null) {
            throw new DataException(f + ":" + lineNo + ": this row has no weight but earlier rows have one (label:weight)");
          }
          int t = 1;
          if (tok.length > 1 && tok[1].startsWith("qid:")) {
            long q;
            try {
              q = Long.parseLong(tok[1].substring(4));
            } catch (NumberFormatException e) {
              throw new DataException(f + ":" + lineNo + ": '" + abbreviate(tok[1]) + "' is not qid:<integer>");
            }
            if (groups == null) {
              if (rows > 0) {
                throw new DataException(f + ":" + lineNo + ": this row has a qid but earlier rows have none");
              }
              groups = new IntList(64);
            }
            if (q != lastQid || groups.size() == 0) {
              groups.add(1);
              lastQid = q;
            } else {
              groups.set(groups.size() - 1, groups.get(groups.size() - 1) + 1);
            }
            t = 2;
          } else if (groups != null) {
            throw new DataException(f + ":" + lineNo + ": this row has no qid but earlier rows have one");
          }
          for (; t < tok.length; t++) {
            String pair = tok[t];
            int c = pair.indexOf(':');
            int index;
            float v;
            try {
              if (c <= 0) throw new NumberFormatException();
              index = Integer.parseInt(pair.substring(0, c));
              v = Float.parseFloat(pair.substring(c + 1));
            } catch (NumberFormatException e) {
              throw new DataException(f + ":" + lineNo + ": '" + abbreviate(pair) + "' is not index:value");
            }
            if (index < 0) throw new DataException(f + ":" + lineNo + ": negative feature index in '" + pair + "'");
            idx.add(index);
            val.add(v);
            if (index > maxIndex) maxIndex = index;
          }
          indptr.add(idx.size());
          rows++;
          if (o.maxRows() > 0 && rows >= o.maxRows()) break outer;
        }
      } catch (DataException e) {
        throw e;
      } catch (IOException e) {
        throw new DataException(f + ": cannot read: " + e.getMessage(), e);
      }
    }
    int[] g = groups == null ? null : groups.toArray();
    return Table.sparse(describe(files), rows, maxIndex + 1, indptr.toArray(), idx.toArray(), val.toArray(),
        y.toArray(), w == null ? null : w.toArray(), g);
  }

  // ---------------------------------------------------------------- helpers

  private static BufferedReader open(Path f) throws IOException {
    if (!Files.isReadable(f)) throw new DataException(f + ": not readable");
    InputStream in = new BufferedInputStream(Files.newInputStream(f), 1 << 16);
    in.mark(2);
    int b0 = in.read();
    int b1 = in.read();
    in.reset();
    if (b0 == 0x1f && b1 == 0x8b) in = new GZIPInputStream(in, 1 << 16);
    return new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8), 1 << 16);
  }

  private static int countFields(String line) {
    int n = 1;
    for (int i = line.indexOf(','); i >= 0; i = line.indexOf(',', i + 1)) n++;
    return n;
  }

  private static String stripComment(String line) {
    int hash = line.indexOf('#');
    return hash >= 0 ? line.substring(0, hash) : line;
  }

  private static boolean isMissing(String tok) {
    return tok.isEmpty() || tok.equalsIgnoreCase("nan") || tok.equals("?") || tok.equalsIgnoreCase("na");
  }

  /** The number, or NaN for a missing value or something that is not a number. */
  private static float parse(String tok) {
    if (isMissing(tok)) return Float.NaN;
    char c = tok.charAt(0);
    if (!(c >= '0' && c <= '9') && c != '-' && c != '+' && c != '.') return Float.NaN;
    try {
      return Float.parseFloat(tok);
    } catch (NumberFormatException e) {
      return Float.NaN;
    }
  }

  private static String abbreviate(String s) {
    return s.length() <= 40 ? s : s.substring(0, 37) + "...";
  }

  static String describe(List<Path> files) {
    if (files.size() == 1) return files.get(0).toString();
    return files.get(0).getParent() + " (" + files.size() + " files)";
  }

  private static final class FloatList {
    private float[] a;
    private int n;

    FloatList(int cap) {
      a = new float[cap];
    }

    void add(float v) {
      if (n == a.length) a = Arrays.copyOf(a, Math.max(16, (int) Math.min(Integer.MAX_VALUE - 8, a.length * 2L)));
      a[n++] = v;
    }

    float[] toArray() {
      return Arrays.copyOf(a, n);
    }
  }

  private static final class IntList {
    private int[] a;
    private int n;

    IntList(int cap) {
      a = new int[cap];
    }

    void add(int v) {
      if (n == a.length) a = Arrays.copyOf(a, Math.max(16, (int) Math.min(Integer.MAX_VALUE - 8, a.length * 2L)));
      a[n++] = v;
    }

    int get(int i) {
      return a[i];
    }

    void set(int i, int v) {
      a[i] = v;
    }

    int size() {
      return n;
    }

    int[] toArray() {
      return Arrays.copyOf(a, n);
    }
  }

  private static final class LongList {
    private long[] a;
    private int n;

    LongList(int cap) {
      a = new long[cap];
    }

    void add(long v) {
      if (n == a.length) a = Arrays.copyOf(a, a.length * 2);
      a[n++] = v;
    }

    long[] toArray() {
      return Arrays.copyOf(a, n);
    }
  }
}
