package io.kiln.it;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import javax.tools.ToolProvider;

/** A user's model jar, compiled at test time against kiln-model-api and DJL's api (this module's test class path). */
final class ModelJars {
  /** The model's source, shared with the worker's tests. */
  static final Path WIDE_NET = ClusterEndToEndTest.REPO.resolve("testdata/java-model/WideNet.java");

  private ModelJars() {}

  /** Compiles {@code com.example.WideNet} into {@code dir/model.jar}. */
  static Path wideNet(Path dir) throws IOException {
    Path src = Files.createDirectories(dir.resolve("src/com/example")).resolve("WideNet.java");
    Files.copy(WIDE_NET, src);
    Path classes = Files.createDirectories(dir.resolve("classes"));
    int rc = ToolProvider.getSystemJavaCompiler().run(null, null, null, "-d", classes.toString(), "--release", "17",
        "-cp", System.getProperty("java.class.path"), src.toString());
    if (rc != 0) throw new IOException("javac failed on " + src);
    Path jar = dir.resolve("model.jar");
    try (OutputStream o = Files.newOutputStream(jar); JarOutputStream j = new JarOutputStream(o);
         Stream<Path> files = Files.walk(classes)) {
      for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile)::iterator) {
        j.putNextEntry(new JarEntry(classes.relativize(f).toString()));
        j.write(Files.readAllBytes(f));
        j.closeEntry();
      }
    }
    return jar;
  }
}
