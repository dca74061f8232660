package io.kiln.worker.script;

import io.kiln.worker.task.TaskEvents;
import java.io.IOException;
import java.net.URI;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * What script mode and processing jobs share about user code on a worker: unpacking the source,
 * linking input folders, the interpreter command of an entry point, and file helpers.
 */
public final class UserCode {
  public static final Pattern CHANNEL_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*");
  private static final Set<PosixFilePermission> OWNER_ONLY = PosixFilePermissions.fromString("rwx------");

  private UserCode() {}

  /**
   * Puts the job's source into {@code codeDir} and returns the entry point's path there. {@code submit}:
   * a .tar.gz/.tar or a folder (absolute path or file: URI), or empty with an absolute {@code program}.
   */
  public static Path installSource(String program, String submit, Path codeDir, TaskEvents events) throws IOException {
    if (submit.isEmpty()) {
      Path p = Path.of(program);
      if (!p.isAbsolute()) {
        throw new IllegalArgumentException("entry point '" + program + "' is relative but the job has no source "
            + "directory (hyperparameters." + ScriptSpec.SUBMIT_DIRECTORY + "; --source-dir DIR)");
      }
      if (!Files.isRegularFile(p)) {
        throw new IllegalArgumentException("entry point " + program + " does not exist on this worker");
      }
      Path copy = codeDir.resolve(p.getFileName().toString());
      Files.copy(p, copy);
      if (Files.isExecutable(p)) copy.toFile().setExecutable(true, true);
      events.info("entry point " + program + " copied into " + codeDir);
      return copy;
    }
    Path source = localPath(submit, "hyperparameters." + ScriptSpec.SUBMIT_DIRECTORY);
    if (Files.isDirectory(source)) {
      copyTree(source, codeDir);
      events.info("source directory " + source + " copied into " + codeDir);
    } else if (Files.isRegularFile(source)) {
      SourceArchive.Result r = SourceArchive.extract(source, codeDir);
      events.info(String.format(Locale.ROOT, "source %s unpacked into %s: %d files, %.1f kB", submit, codeDir,
          r.files(), r.bytes() / 1e3));
      if (!r.skipped().isEmpty()) events.warn("skipped in the source archive: " + String.join(", ", r.skipped()));
    } else {
      throw new IllegalArgumentException("source " + submit + " does not exist on this worker (on a remote cluster, "
          + "submit with the kiln CLI, which uploads it: PUT /api/v1/sources/<sha256>)");
    }
    Path entry = codeDir.resolve(program).normalize();
    if (Path.of(program).isAbsolute() || !entry.startsWith(codeDir)) {
      throw new IllegalArgumentException("entry point '" + program + "' must be a path inside the source directory");
    }
    if (!Files.isRegularFile(entry)) {
      throw new IllegalArgumentException("entry point '" + program + "' not found in the source " + submit
          + " (it has: " + listing(codeDir) + ")");
    }
    return entry;
  }

  /**
   * Links each top-level entry of the input {@code value} (a folder or a file) into {@code dst}; the
   * data is not copied. Returns the number of links.
   */
  public static int link(String kind, String name, String value, Path dst, TaskEvents events) throws IOException {
    if (!CHANNEL_NAME.matcher(name).matches()) {
      throw new IllegalArgumentException(kind + " name '" + name + "' must be letters, digits, '.', '_' or '-'");
    }
    Path src = localPath(value, kind + "s." + name);
    if (!Files.exists(src)) {
      throw new IllegalArgumentException(kind + " '" + name + "': " + src + " does not exist on this worker");
    }
    Files.createDirectories(dst);
    int n = 0;
    if (Files.isDirectory(src)) {
      try (Stream<Path> entries = Files.list(src)) {
        for (Path e : (Iterable<Path>) entries.sorted()::iterator) {
          Files.createSymbolicLink(dst.resolve(e.getFileName().toString()), e.toAbsolutePath());
          n++;
        }
      }
    } else {
      Files.createSymbolicLink(dst.resolve(src.getFileName().toString()), src.toAbsolutePath());
      n = 1;
    }
    events.info(kind + " " + name + ": " + n + " entries of " + src + " linked into " + dst);
    return n;
  }

  /** {@code python entry} for .py, {@code bash entry} for .sh, else {@code ./entry} (made executable). */
  public static List<String> interpreter(Path entry, Path codeDir, String python, TaskEvents events) {
    List<String> cmd = new ArrayList<>();
    String rel = codeDir.relativize(entry).toString();
    String name = entry.getFileName().toString();
    if (name.endsWith(".py")) {
      cmd.add(python);
      cmd.add(rel);
    } else if (name.endsWith(".sh")) {
      cmd.add("/bin/bash");
      cmd.add(rel);
    } else {
      if (!Files.isExecutable(entry)) {
        entry.toFile().setExecutable(true, true);
        events.info("made the entry point " + rel + " executable");
      }
      cmd.add("./" + rel);
    }
    return cmd;
  }

  /** An absolute path or {@code file:} URI as a local path. */
  public static Path localPath(String value, String field) {
    String v = value.trim();
    if (v.startsWith("/")) return Path.of(v);
    URI u;
    try {
      u = URI.create(v);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(field + ": '" + value + "' is not a path or URI");
    }
    if ("file".equals(u.getScheme()) && u.getPath() != null) return Path.of(u.getPath());
    throw new IllegalArgumentException(field + ": '" + value + "' must be an absolute path or a file: URI");
  }

  /** {@code <dataDir>/jobs/<task>}, emptied of an earlier attempt, mode 700. */
  public static Path taskDirectory(Path dataDir, String taskId) throws IOException {
    String s = taskId.replaceAll("[^A-Za-z0-9._-]", "_");
    if (s.isEmpty() || s.equals(".") || s.equals("..")) s = "task";
    Path taskDir = dataDir.resolve("jobs").resolve(s);
    if (Files.exists(taskDir, LinkOption.NOFOLLOW_LINKS)) deleteTree(taskDir);
    Files.createDirectories(taskDir);
    ownerOnly(taskDir);
    return taskDir;
  }

  public static void ownerOnly(Path p) {
    try {
      Files.setPosixFilePermissions(p, OWNER_ONLY);
    } catch (IOException | UnsupportedOperationException ignored) {
      // not a POSIX file system: nothing to restrict
    }
  }

  static String listing(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      List<String> names = s.filter(Files::isRegularFile).map(p -> dir.relativize(p).toString()).sorted().limit(21)
          .toList();
      if (names.isEmpty()) return "no files";
      if (names.size() > 20) return String.join(", ", names.subList(0, 20)) + ", ...";
      return String.join(", ", names);
    }
  }

  public static boolean isEmptyTree(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) return true;
    try (Stream<Path> s = Files.walk(dir)) {
      return s.noneMatch(Files::isRegularFile);
    }
  }

  static void copyTree(Path from, Path to) throws IOException {
    Files.walkFileTree(from, new SimpleFileVisitor<>() {
      @Override
      public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attrs) throws IOException {
        if (dir.getFileName() != null && dir.getFileName().toString().equals(".git") && !dir.equals(from)) {
          return FileVisitResult.SKIP_SUBTREE;
        }
        Files.createDirectories(to.resolve(from.relativize(dir).toString()));
        return FileVisitResult.CONTINUE;
      }

      @Override
      public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
        if (attrs.isRegularFile()) {
          Path t = to.resolve(from.relativize(file).toString());
          Files.copy(file, t);
          if (Files.isExecutable(file)) t.toFile().setExecutable(true, true);
        }
        return FileVisitResult.CONTINUE;
      }
    });
  }

  public static void deleteTree(Path root) {
    if (root == null || !Files.exists(root, LinkOption.NOFOLLOW_LINKS)) return;
    try {
      Files.walkFileTree(root, new SimpleFileVisitor<>() {
        @Override
        public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
          Files.deleteIfExists(file); // symbolic links (channels) are removed, never followed
          return FileVisitResult.CONTINUE;
        }

        @Override
        public FileVisitResult postVisitDirectory(Path dir, IOException e) throws IOException {
          Files.deleteIfExists(dir);
          return FileVisitResult.CONTINUE;
        }
      });
    } catch (IOException ignored) {
      // best effort
    }
  }
}
