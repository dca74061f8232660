package io.kiln.worker;

import java.nio.file.Files;
import java.nio.file.Path;

/** Where the committed test data lives (surefire sets {@code kiln.repo.root}). */
public final class TestData {
  private TestData() {}

  public static Path repoRoot() {
    String root = System.getProperty("kiln.repo.root");
    Path p = root != null ? Path.of(root) : Path.of("..").toAbsolutePath().normalize();
    if (!Files.isDirectory(p.resolve("testdata"))) p = Path.of("").toAbsolutePath().getParent();
    return p;
  }

  /** 3,000 training and 1,000 test images of Fashion-MNIST. */
  public static Path fashionSmall() {
    return repoRoot().resolve("testdata/fashion-mnist-small");
  }
}
