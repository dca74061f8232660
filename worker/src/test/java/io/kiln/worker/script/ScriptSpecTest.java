package io.kiln.worker.script;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kiln.protocol.proto.JobSpec;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The reserved hyperparameters, metric definitions, SM_HPS decoding and the source archive reader. */
class ScriptSpecTest {
  @TempDir Path tmp;

  @Test
  void reservedKeysAreReadAndStrippedFromTheScriptsHyperparameters() {
    JobSpec spec = JobSpec.newBuilder().setAlgorithm("script")
        .putHyperparameters("sagemaker_program", "\"train.py\"") // as the SageMaker SDK JSON-encodes it
        .putHyperparameters("sagemaker_submit_directory", "file:/tmp/src.tar.gz")
        .putHyperparameters("sagemaker_region", "\"us-west-2\"")
        .putHyperparameters("kiln_metric_definitions", "[{\"Name\":\"loss\",\"Regex\":\"loss=([0-9.]+)\"}]")
        .putHyperparameters("epochs", "3").putHyperparameters("lr", "0.1").build();
    ScriptSpec s = ScriptSpec.fromSpec(spec);
    assertEquals("train.py", s.program());
    assertEquals("file:/tmp/src.tar.gz", s.submitDirectory());
    assertEquals(Map.of("epochs", "3", "lr", "0.1"), s.hyperparameters());
    assertEquals(1, s.metrics().size());
    assertEquals("loss", s.metrics().get(0).name());
    assertTrue(ScriptSpec.isReserved("kiln_anything") && ScriptSpec.isReserved("sagemaker_x"));
    assertFalse(ScriptSpec.isReserved("learning_rate"));
  }

  @Test
  void metricDefinitionsFindTheFirstGroupOrTheWholeMatch() {
    List<MetricDefinition> defs = MetricDefinition.parseList(
        "[{\"Name\":\"loss\",\"Regex\":\"loss: ([0-9.eE+-]+)\"},{\"name\":\"acc\",\"regex\":\"(?<=acc=)[0-9.]+\"}]");
    assertEquals(0.25, defs.get(0).find("epoch 1 loss: 0.25 acc=0.9").getAsDouble());
    assertEquals(1e-3, defs.get(0).find("loss: 1e-3").getAsDouble());
    assertEquals(0.9, defs.get(1).find("epoch 1 loss: 0.25 acc=0.9").getAsDouble());
    assertFalse(defs.get(0).find("no metric here").isPresent());
    assertFalse(defs.get(0).find("loss: nan-ish").isPresent());
    assertTrue(MetricDefinition.parseList("").isEmpty());
  }

  @Test
  void badMetricDefinitionsAreNamed() {
    assertMessage("not valid JSON", "[{");
    assertMessage("must be a JSON list", "{\"Name\":\"x\"}");
    assertMessage("has no Name", "[{\"Regex\":\"x\"}]");
    assertMessage("metric 'x' has no Regex", "[{\"Name\":\"x\"}]");
    assertMessage("metric 'x': invalid regular expression", "[{\"Name\":\"x\",\"Regex\":\"(\"}]");
    assertMessage("metric 'x' is defined twice", "[{\"Name\":\"x\",\"Regex\":\"a\"},{\"Name\":\"x\",\"Regex\":\"b\"}]");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ScriptSpec.fromSpec(
        JobSpec.newBuilder().putHyperparameters("sagemaker_program", "t.py")
            .putHyperparameters("kiln_metric_definitions", "[1]").build()));
    assertTrue(e.getMessage().startsWith("hyperparameters.kiln_metric_definitions: metric definition 1"),
        e.getMessage());
  }

  private static void assertMessage(String part, String json) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MetricDefinition.parseList(json));
    assertTrue(e.getMessage().contains(part), e.getMessage());
  }

  @Test
  void smHpsDecodesValuesLikeTheSageMakerToolkit() {
    Map<String, String> hp = new TreeMap<>(Map.of("a", "3", "b", "0.5", "c", "abc", "d", "true", "e", "[1, 2]",
        "f", "{\"k\": 1}", "g", "\"quoted\"", "h", "1e-3", "i", "01", "j", "[not json"));
    assertEquals("{\"a\":3,\"b\":0.5,\"c\":\"abc\",\"d\":true,\"e\":[1,2],\"f\":{\"k\":1},\"g\":\"quoted\",\"h\":1e-3,"
        + "\"i\":\"01\",\"j\":\"[not json\"}", TrainingContract.decodedHyperparameters(hp));
    assertEquals(List.of("--a", "3", "--b", "0.5"), TrainingContract.arguments(Map.of("b", "0.5", "a", "3")));
    assertEquals("LEARNING_RATE", TrainingContract.envName("learning_rate"));
    assertEquals("MY_HP_1", TrainingContract.envName("my-hp.1"));
  }

  // ------------------------------------------------------------------ source archives

  @Test
  void readsUstarLongNamesAndKeepsTheExecuteBit() throws Exception {
    String longName = "pkg/" + "d".repeat(120) + "/mod.py";
    ByteArrayOutputStream tar = new ByteArrayOutputStream();
    entry(tar, "././@LongLink", 'L', (longName + "\0").getBytes(StandardCharsets.UTF_8), 0644);
    entry(tar, longName.substring(0, 99), '0', "x = 1\n".getBytes(StandardCharsets.UTF_8), 0644);
    entry(tar, "./run.sh", '0', "echo hi\n".getBytes(StandardCharsets.UTF_8), 0755);
    entry(tar, "./lib/", '5', new byte[0], 0755);
    entry(tar, "./link", '2', new byte[0], 0777);
    tar.write(new byte[1024]);
    Path dest = tmp.resolve("code");
    SourceArchive.Result r = SourceArchive.extract(new ByteArrayInputStream(tar.toByteArray()), dest, "t.tar");
    assertEquals(2, r.files());
    assertEquals("x = 1\n", Files.readString(dest.resolve(longName)));
    assertTrue(Files.isExecutable(dest.resolve("run.sh")));
    assertFalse(Files.isExecutable(dest.resolve(longName)));
    assertTrue(Files.isDirectory(dest.resolve("lib")));
    assertEquals(List.of("link (symbolic link)"), r.skipped());
  }

  @Test
  void readsArchivesMadeByPythonsTarfileAsTheSageMakerSdkDoes() throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/python3")));
    Path src = tmp.resolve("src");
    String deep = "p".repeat(80) + "/" + "q".repeat(120); // a component over 100 bytes: a pax path header
    Files.createDirectories(src.resolve(deep));
    Files.writeString(src.resolve(deep + "/m.py"), "M = 1\n");
    Files.writeString(src.resolve("train.py"), "print(1)\n");
    Path tgz = tmp.resolve("sourcedir.tar.gz");
    Process p = new ProcessBuilder("/usr/bin/python3", "-c", "import sys, tarfile\n"
        + "with tarfile.open(sys.argv[1], 'w:gz') as t:\n"
        + "    t.add(sys.argv[2], arcname='.')\n", tgz.toString(), src.toString()).inheritIO().start();
    assertEquals(0, p.waitFor());
    Path dest = tmp.resolve("code");
    SourceArchive.Result r = SourceArchive.extract(tgz, dest);
    assertEquals(2, r.files());
    assertEquals("M = 1\n", Files.readString(dest.resolve(deep + "/m.py")));
    assertEquals("print(1)\n", Files.readString(dest.resolve("train.py")));
  }

  @Test
  void refusesEntriesOutsideTheCodeDirectory() throws Exception {
    for (String bad : List.of("../evil.py", "a/../../evil.py", "/etc/evil")) {
      ByteArrayOutputStream tar = new ByteArrayOutputStream();
      entry(tar, bad, '0', "x".getBytes(StandardCharsets.UTF_8), 0644);
      tar.write(new byte[1024]);
      IOException e = assertThrows(IOException.class, () -> SourceArchive.extract(
          new ByteArrayInputStream(tar.toByteArray()), tmp.resolve("code"), "t.tar"));
      assertTrue(e.getMessage().contains("outside the code directory"), e.getMessage());
    }
    assertFalse(Files.exists(tmp.resolve("evil.py")));
    ByteArrayOutputStream cut = new ByteArrayOutputStream();
    entry(cut, "big.bin", '0', new byte[5000], 0644);
    byte[] truncated = java.util.Arrays.copyOf(cut.toByteArray(), 512 + 1000);
    IOException e = assertThrows(IOException.class, () -> SourceArchive.extract(
        new ByteArrayInputStream(truncated), tmp.resolve("c2"), "t.tar"));
    assertTrue(e.getMessage().contains("truncated") || e.getMessage().contains("checksum"), e.getMessage());
    byte[] garbage = new byte[512];
    garbage[0] = 'x';
    e = assertThrows(IOException.class, () -> SourceArchive.extract(new ByteArrayInputStream(garbage), tmp.resolve("c3"),
        "t.tar"));
    assertTrue(e.getMessage().contains("not a tar archive"), e.getMessage());
  }

  /** Writes one ustar entry (header, data, padding). */
  static void entry(ByteArrayOutputStream out, String name, char type, byte[] data, int mode) throws IOException {
    byte[] h = new byte[512];
    byte[] n = name.getBytes(StandardCharsets.UTF_8);
    System.arraycopy(n, 0, h, 0, Math.min(100, n.length));
    octal(h, 100, 8, mode);
    octal(h, 108, 8, 0);
    octal(h, 116, 8, 0);
    octal(h, 124, 12, data.length);
    octal(h, 136, 12, 0);
    h[156] = (byte) type;
    System.arraycopy("ustar\0".getBytes(StandardCharsets.US_ASCII), 0, h, 257, 6);
    h[263] = '0';
    h[264] = '0';
    for (int i = 148; i < 156; i++) h[i] = ' ';
    long sum = 0;
    for (byte b : h) sum += b & 0xff;
    octal(h, 148, 7, sum);
    out.write(h);
    out.write(data);
    int pad = (512 - data.length % 512) % 512;
    out.write(new byte[pad]);
  }

  private static void octal(byte[] h, int off, int len, long v) {
    String s = String.format("%0" + (len - 1) + "o", v);
    byte[] b = s.getBytes(StandardCharsets.US_ASCII);
    System.arraycopy(b, 0, h, off, b.length);
    h[off + len - 1] = 0;
  }
}
