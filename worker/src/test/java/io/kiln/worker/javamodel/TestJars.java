package io.kiln.worker.javamodel;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;

/** Builds a user's model jar at test time: Java sources compiled with javax.tools against a class path. */
final class TestJars {
  /** com.example.WideNet, a KilnModel (dense, ReLU, dense; hyperparameter width), shared with the integration tests. */
  static String wideNet() throws IOException {
    return Files.readString(io.kiln.worker.TestData.repoRoot().resolve("testdata/java-model/WideNet.java"));
  }

  private TestJars() {}

  /** Compiles {@code sources} (binary class name, source pairs) against {@code classPath}; returns the jar. */
  static Path build(Path dir, String classPath, String... sources) throws IOException {
    Path src = Files.createDirectories(dir.resolve("src"));
    Path classes = Files.createDirectories(dir.resolve("classes"));
    List<String> args = new ArrayList<>(List.of("-d", classes.toString(), "--release", "17"));
    if (classPath != null && !classPath.isEmpty()) args.addAll(List.of("-cp", classPath));
    for (int i = 0; i < sources.length; i += 2) {
      Path f = src.resolve(sources[i].replace('.', '/') + ".java");
      Files.createDirectories(f.getParent());
      Files.writeString(f, sources[i + 1]);
      args.add(f.toString());
    }
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    if (javac.run(null, null, null, args.toArray(String[]::new)) != 0) throw new IOException("javac failed: " + args);
    Path jar = dir.resolve("model.jar");
    try (OutputStream out = Files.newOutputStream(jar); JarOutputStream j = new JarOutputStream(out);
         Stream<Path> files = Files.walk(classes)) {
      for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile).sorted()::iterator) {
        j.putNextEntry(new JarEntry(classes.relativize(f).toString()));
        j.write(Files.readAllBytes(f));
        j.closeEntry();
      }
    }
    return jar;
  }
}
