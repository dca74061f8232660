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
  /** A KilnModel: flatten, one dense ReLU layer of {@code width} (hyperparameter, default 64), logits. */
  static final String TINY_NET = """
      package com.example;

      import ai.djl.ndarray.types.Shape;
      import ai.djl.nn.Activation;
      import ai.djl.nn.Block;
      import ai.djl.nn.SequentialBlock;
      import ai.djl.nn.core.Linear;
      import io.kiln.api.KilnModel;
      import java.util.Map;

      public class TinyNet implements KilnModel {
        public Block build(Map<String, String> hp, int numClasses) {
          int width = Integer.parseInt(hp.getOrDefault("width", "64"));
          return new SequentialBlock().add(Linear.builder().setUnits(width).build()).add(Activation.reluBlock())
              .add(Linear.builder().setUnits(numClasses).build());
        }

        public Shape inputShape(int rows, int cols) {
          return new Shape((long) rows * cols);
        }

        public Map<String, String> defaults() {
          return Map.of("width", "64");
        }
      }
      """;

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
