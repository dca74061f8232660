package io.kiln.deploy.transform;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.deploy.predictor.Predictor;
import io.kiln.deploy.predictor.PredictorLoader;
import io.kiln.worker.training.ModelArtifacts;
import java.io.BufferedWriter;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * One split of a batch transform: runs a model over its share of a dataset and writes the predictions.
 *
 * <pre>
 * java -cp ... io.kiln.deploy.transform.TransformMain --model URI --input FILE_OR_DIR --output DIR --split i/N
 *   [--content-type text/csv|application/jsonlines|idx] [--batch-size 256]
 * </pre>
 *
 * Every input file (a folder: each regular file in name order, hidden files and {@code .out}/{@code .errors}
 * skipped) is cut into N contiguous row ranges; split i takes range i of every file. Rows are CSV lines
 * (numbers), JSON lines ({@code {"features":[..]}} or {@code [..]}) or the images of an IDX file (raw
 * unsigned bytes). Predictions are CSV lines written to {@code <output>/<file>.out.part-i}; rows that
 * fail to parse or predict go to {@code <output>/<file>.errors.part-i} as {@code line N: reason} (IDX:
 * {@code row N}). With N = 1 the files are {@code <file>.out} and {@code <file>.errors}. The last line
 * printed is {@code {"rows_done":..,"rows_failed":..}}. Exit 0 when done, 2 on a fatal error (no
 * model, unreadable input: not worth retrying), 1 on anything else.
 *
 * <p>Fault injection (tests only): with {@code -Dkiln.transform.test.fail-once-split=i}, split i exits 3
 * on its first attempt (it leaves a marker {@code .fail-once-i} in the output folder and fails; the next
 * attempt sees the marker and runs normally). {@code -Dkiln.transform.test.hang-once-split=i}: split i
 * hangs on its first attempt instead (same marker), e.g. until its worker is killed.
 */
public final class TransformMain {
  static final ObjectMapper JSON = new ObjectMapper();
  static final String PREFIX = "kiln-transform: ";

  /** A fatal error: exit 2, no retry helps. */
  static final class Fatal extends Exception {
    Fatal(String m) {
      super(m);
    }
  }

  public record Counts(long done, long failed) {}

  public static void main(String[] args) {
    int code;
    try {
      Counts c = run(parse(args));
      System.out.println("{\"rows_done\":" + c.done() + ",\"rows_failed\":" + c.failed() + "}");
      code = 0;
    } catch (Fatal e) {
      System.err.println(PREFIX + "fatal: " + e.getMessage());
      System.out.println(PREFIX + "fatal: " + e.getMessage());
      code = 2;
    } catch (Exception e) {
      System.out.println(PREFIX + "failed: " + e);
      e.printStackTrace();
      code = 1;
    }
    System.out.flush();
    System.exit(code);
  }

  public record Options(String model, Path input, Path output, int split, int splits, String contentType, int batchSize) {}

  static Options parse(String[] args) throws Fatal {
    Map<String, String> a = new LinkedHashMap<>();
    for (int i = 0; i < args.length; i++) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) throw new Fatal("bad argument '" + args[i] + "' (usage: --model URI "
          + "--input FILE_OR_DIR --output DIR --split i/N [--content-type text/csv|application/jsonlines|idx] [--batch-size N])");
      a.put(args[i], args[++i]);
    }
    for (String k : List.of("--model", "--input", "--output")) if (!a.containsKey(k)) throw new Fatal("missing " + k);
    String split = a.getOrDefault("--split", "0/1");
    String[] s = split.split("/");
    int i;
    int n;
    try {
      i = Integer.parseInt(s[0]);
      n = Integer.parseInt(s[1]);
    } catch (RuntimeException e) {
      throw new Fatal("--split must be i/N, e.g. 0/2; got " + split);
    }
    if (n < 1 || i < 0 || i >= n) throw new Fatal("--split must be i/N with 0 <= i < N; got " + split);
    return new Options(a.get("--model"), path(a.get("--input")), path(a.get("--output")), i, n,
        a.getOrDefault("--content-type", ""), Integer.parseInt(a.getOrDefault("--batch-size", "256")));
  }

  private static Path path(String s) {
    return s.startsWith("file:") ? Path.of(URI.create(s)) : Path.of(s).toAbsolutePath();
  }

  public static Counts run(Options o) throws Exception {
    String failOnce = System.getProperty("kiln.transform.test.fail-once-split");
    if (failOnce != null && Integer.parseInt(failOnce) == o.split()) {
      Files.createDirectories(o.output());
      Path marker = o.output().resolve(".fail-once-" + o.split());
      if (!Files.exists(marker)) {
        Files.writeString(marker, "failed once\n");
        System.out.println(PREFIX + "failing split " + o.split() + " on purpose (kiln.transform.test.fail-once-split)");
        System.out.flush();
        System.exit(3);
      }
    }
    String hangOnce = System.getProperty("kiln.transform.test.hang-once-split");
    if (hangOnce != null && Integer.parseInt(hangOnce) == o.split()) {
      Files.createDirectories(o.output());
      Path marker = o.output().resolve(".fail-once-" + o.split());
      if (!Files.exists(marker)) {
        Files.writeString(marker, "hung once\n");
        System.out.println(PREFIX + "hanging split " + o.split() + " on purpose (kiln.transform.test.hang-once-split)");
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
      }
    }
    List<Path> files = inputs(o.input());
    Predictor p;
    try {
      URI u = ModelArtifacts.normalize(o.model().contains(":") ? URI.create(o.model()) : Path.of(o.model()).toAbsolutePath().toUri());
      p = PredictorLoader.load(ArtifactStore.forRoot(u).localPath(u));
    } catch (IOException e) {
      throw new Fatal("cannot load the model " + o.model() + ": " + e.getMessage());
    }
    try (p) {
      Files.createDirectories(o.output());
      long done = 0;
      long failed = 0;
      for (Path f : files) {
        Counts c = transform(p, f, o);
        done += c.done();
        failed += c.failed();
      }
      return new Counts(done, failed);
    }
  }

  static List<Path> inputs(Path input) throws Fatal, IOException {
    if (Files.isRegularFile(input)) {
      if (!Files.isReadable(input)) throw new Fatal("cannot read the input " + input);
      return List.of(input);
    }
    if (!Files.isDirectory(input)) throw new Fatal("no such input file or folder: " + input);
    try (Stream<Path> s = Files.list(input)) {
      List<Path> l = s.filter(Files::isRegularFile).filter(f -> isData(f.getFileName().toString())).sorted().toList();
      if (l.isEmpty()) throw new Fatal("the input folder " + input + " holds no data file");
      return l;
    }
  }

  static boolean isData(String n) {
    return !n.startsWith(".") && !n.contains(".out") && !n.contains(".errors");
  }

  static String kind(Path f, String contentType) {
    String ct = contentType.toLowerCase();
    String n = f.getFileName().toString().toLowerCase();
    if (ct.contains("idx") || ct.isEmpty() && (n.contains("idx") || n.endsWith("-ubyte"))) return "idx";
    if (ct.contains("json") || ct.isEmpty() && (n.endsWith(".jsonl") || n.endsWith(".json") || n.endsWith(".jsonlines"))) return "jsonl";
    return "csv";
  }

  /** The file names a split writes: {@code <file>.out[.part-i]}, {@code <file>.errors[.part-i]}. */
  public static String outName(String file, int split, int splits) {
    return file + ".out" + (splits == 1 ? "" : ".part-" + split);
  }

  public static String errorsName(String file, int split, int splits) {
    return file + ".errors" + (splits == 1 ? "" : ".part-" + split);
  }

  private record Row(long line, float[] x, String error) {}

  static Counts transform(Predictor p, Path f, Options o) throws Exception {
    List<Row> rows = read(f, kind(f, o.contentType()), o);
    String name = f.getFileName().toString();
    long done = 0;
    long failed = 0;
    try (BufferedWriter out = Files.newBufferedWriter(o.output().resolve(outName(name, o.split(), o.splits())));
         BufferedWriter err = Files.newBufferedWriter(o.output().resolve(errorsName(name, o.split(), o.splits())))) {
      String unit = kind(f, o.contentType()).equals("idx") ? "row " : "line ";
      List<Row> batch = new ArrayList<>();
      for (int i = 0; i <= rows.size(); i++) {
        Row r = i < rows.size() ? rows.get(i) : null;
        if (r != null && r.error() != null) {
          // flush first so that outputs stay in input order
          long[] c = flush(p, batch, out, err, unit);
          done += c[0];
          failed += c[1];
          err.write(unit + r.line() + ": " + r.error() + "\n");
          failed++;
          continue;
        }
        if (r != null) batch.add(r);
        if (r == null || batch.size() >= o.batchSize()) {
          long[] c = flush(p, batch, out, err, unit);
          done += c[0];
          failed += c[1];
        }
      }
    }
    return new Counts(done, failed);
  }

  private static long[] flush(Predictor p, List<Row> batch, BufferedWriter out, BufferedWriter err, String unit) throws Exception {
    if (batch.isEmpty()) return new long[] {0, 0};
    float[][] x = batch.stream().map(Row::x).toArray(float[][]::new);
    long done = 0;
    long failed = 0;
    float[][] y;
    try {
      y = p.predict(x);
    } catch (IllegalArgumentException e) {
      y = null; // one bad row (e.g. wrong width) must not fail the others: predict row by row
    }
    for (int i = 0; i < batch.size(); i++) {
      float[] yi;
      if (y != null) {
        yi = y[i];
      } else {
        try {
          yi = p.predict(new float[][] {x[i]})[0];
        } catch (IllegalArgumentException e) {
          err.write(unit + batch.get(i).line() + ": " + e.getMessage() + "\n");
          failed++;
          continue;
        }
      }
      StringBuilder sb = new StringBuilder();
      for (int j = 0; j < yi.length; j++) {
        if (j > 0) sb.append(',');
        float v = yi[j];
        sb.append(v == Math.rint(v) && Math.abs(v) < 1e9 ? Long.toString((long) v) : Float.toString(v));
      }
      out.write(sb.append('\n').toString());
      done++;
    }
    batch.clear();
    return new long[] {done, failed};
  }

  static List<Row> read(Path f, String kind, Options o) throws Fatal, IOException {
    if (kind.equals("idx")) return readIdx(f, o);
    List<String> lines;
    try {
      lines = Files.readAllLines(f, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new Fatal("cannot read the input " + f + ": " + e.getMessage());
    }
    List<Integer> idx = new ArrayList<>(); // 0-based index of every non-blank line
    for (int i = 0; i < lines.size(); i++) if (!lines.get(i).isBlank()) idx.add(i);
    long from = (long) idx.size() * o.split() / o.splits();
    long to = (long) idx.size() * (o.split() + 1) / o.splits();
    List<Row> rows = new ArrayList<>();
    for (int k = (int) from; k < to; k++) {
      int i = idx.get(k);
      String line = lines.get(i).trim();
      try {
        rows.add(new Row(i + 1, kind.equals("jsonl") ? jsonRow(line) : csvRow(line), null));
      } catch (IllegalArgumentException | IOException e) {
        rows.add(new Row(i + 1, null, e.getMessage()));
      }
    }
    return rows;
  }

  static float[] csvRow(String line) {
    String[] parts = line.split(",", -1);
    float[] x = new float[parts.length];
    for (int j = 0; j < parts.length; j++) {
      try {
        x[j] = Float.parseFloat(parts[j].trim());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("column " + (j + 1) + ": '" + parts[j].trim() + "' is not a number");
      }
    }
    return x;
  }

  static float[] jsonRow(String line) throws IOException {
    JsonNode n;
    try {
      n = JSON.readTree(line);
    } catch (IOException e) {
      throw new IllegalArgumentException("not valid JSON");
    }
    if (n != null && n.isObject()) n = n.get("features");
    if (n == null || !n.isArray()) throw new IllegalArgumentException("expected {\"features\": [..]} or [..]");
    float[] x = new float[n.size()];
    for (int j = 0; j < n.size(); j++) {
      if (!n.get(j).isNumber()) throw new IllegalArgumentException("feature " + j + " is not a number: " + n.get(j));
      x[j] = n.get(j).floatValue();
    }
    return x;
  }

  /** IDX with unsigned-byte data (magic 0x0000 08 dims): row = first dimension, features = the rest. */
  static List<Row> readIdx(Path f, Options o) throws Fatal, IOException {
    try (InputStream in = new java.io.BufferedInputStream(Files.newInputStream(f)); DataInputStream d = new DataInputStream(in)) {
      int magic = d.readInt();
      int type = (magic >> 8) & 0xff;
      int dims = magic & 0xff;
      if ((magic >>> 16) != 0 || type != 0x08 || dims < 1) {
        throw new Fatal(f + ": not an unsigned-byte IDX file (magic 0x" + Integer.toHexString(magic) + ")");
      }
      int n = d.readInt();
      int width = 1;
      for (int i = 1; i < dims; i++) width *= d.readInt();
      long from = (long) n * o.split() / o.splits();
      long to = (long) n * (o.split() + 1) / o.splits();
      d.skipNBytes(from * width);
      List<Row> rows = new ArrayList<>();
      byte[] b = new byte[width];
      for (long r = from; r < to; r++) {
        d.readFully(b);
        float[] x = new float[width];
        for (int j = 0; j < width; j++) x[j] = b[j] & 0xff;
        rows.add(new Row(r, x, null));
      }
      return rows;
    } catch (java.io.EOFException e) {
      throw new Fatal(f + ": truncated IDX file");
    } catch (IOException e) {
      throw new Fatal("cannot read the input " + f + ": " + e.getMessage());
    }
  }
}
