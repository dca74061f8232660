package io.kiln.worker.script;

import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;

/**
 * The size limit of what a task writes for Kiln to keep (model, output data, checkpoints), checked
 * while it runs: a periodic walk of those folders (links not followed), since a file system quota
 * per task directory is not available everywhere. A single file is also capped by RLIMIT_FSIZE
 * (the sandbox), which stops a fast writer between two walks.
 */
public final class OutputLimit implements Supplier<String> {
  private final List<Path> roots;
  private final long maxBytes;
  private final String what;

  /** {@code what} names the folders in the failure reason, e.g. "model/, output/ and checkpoints/". */
  public OutputLimit(List<Path> roots, long maxBytes, String what) {
    this.roots = List.copyOf(roots);
    this.maxBytes = maxBytes;
    this.what = what;
  }

  /** The failure reason when the folders hold more than the limit, else null. */
  @Override
  public String get() {
    if (maxBytes <= 0) return null;
    long total = size(roots);
    if (total <= maxBytes) return null;
    return String.format(Locale.ROOT, "output too large: %s hold %.1f MB, more than the limit of %d MB "
        + "(kiln_max_output_mb / kiln.worker.script.max-output)", what, total / 1048576.0, maxBytes >> 20);
  }

  /** Bytes of the regular files under {@code roots}, without following links. */
  public static long size(List<Path> roots) {
    long[] total = {0};
    for (Path r : roots) {
      if (!Files.isDirectory(r)) continue;
      try {
        Files.walkFileTree(r, new SimpleFileVisitor<>() {
          @Override
          public FileVisitResult visitFile(Path f, BasicFileAttributes a) {
            if (a.isRegularFile()) total[0] += a.size();
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult visitFileFailed(Path f, IOException e) {
            return FileVisitResult.CONTINUE; // deleted while we walked
          }
        });
      } catch (IOException ignored) {
        // counted what could be read
      }
    }
    return total[0];
  }
}
