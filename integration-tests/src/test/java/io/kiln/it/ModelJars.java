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
  static final String WIDE_NET = """
      package com.example;

      import ai.djl.ndarray.types.Shape;
      import ai.djl.nn.Activation;
      import ai.djl.nn.Block;
      import ai.djl.nn.SequentialBlock;
      import ai.djl.nn.core.Linear;
      import io.kiln.api.KilnModel;
      import java.util.Map;

      /** Dense, ReLU, dense: its width is a hyperparameter. */
      public class WideNet implements KilnModel {
        public Block build(Map<String, String> hp, int numClasses) {
          int width = Integer.parseInt(hp.getOrDefault("width", "64"));
          return new SequentialBlock().add(Linear.builder().setUnits(width).build()).add(Activation.reluBlock())
              .add(Linear.builder().setUnits(numClasses).build());
        }

        public Shape inputShape(int rows, int cols) {
          return new Shape((long) rows * cols);
        }
      }
      """;

  private ModelJars() {}

  /** Compiles {@code com.example.WideNet} into {@code dir/model.jar}. */
  static Path wideNet(Path dir) throws IOException {
    Path src = Files.createDirectories(dir.resolve("src/com/example")).resolve("WideNet.java");
    Files.writeString(src, WIDE_NET);
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
