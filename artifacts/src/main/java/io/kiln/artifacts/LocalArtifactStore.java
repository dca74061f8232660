package io.kiln.artifacts;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.stream.Stream;

/** An artifact store in a local directory; writes go to a temporary file and are renamed into place. */
public final class LocalArtifactStore implements ArtifactStore {
  private final Path root;

  public LocalArtifactStore(Path root) {
    this.root = root.toAbsolutePath().normalize();
    try {
      Files.createDirectories(this.root);
    } catch (IOException e) {
      throw new IllegalStateException("cannot create artifact store directory " + this.root + ": " + e.getMessage(), e);
    }
  }

  public Path root() {
    return root;
  }

  @Override
  public URI uri(String key) {
    Path p = root.resolve(key).normalize();
    if (!p.startsWith(root)) throw new IllegalArgumentException("artifact key escapes the store: " + key);
    return p.toUri();
  }

  @Override
  public void put(URI uri, byte[] bytes) throws IOException {
    try (OutputStream out = create(uri)) {
      out.write(bytes);
    }
  }

  @Override
  public OutputStream create(URI uri) throws IOException {
    Path target = path(uri);
    Files.createDirectories(target.getParent());
    Path tmp = Files.createTempFile(target.getParent(), "." + target.getFileName(), ".tmp");
    return new FilterOutputStream(Files.newOutputStream(tmp)) {
      private boolean closed;

      @Override
      public void write(byte[] b, int off, int len) throws IOException {
        out.write(b, off, len);
      }

      @Override
      public void close() throws IOException {
        if (closed) return;
        closed = true;
        super.close();
        try {
          Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
          Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
        }
      }
    };
  }

  @Override
  public void upload(Path local, URI uri) throws IOException {
    Path target = path(uri);
    if (Files.isDirectory(local)) {
      try (Stream<Path> files = Files.walk(local)) {
        for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile)::iterator) {
          upload(f, target.resolve(local.relativize(f).toString()).toUri());
        }
      }
      return;
    }
    try (InputStream in = Files.newInputStream(local); OutputStream out = create(uri)) {
      in.transferTo(out);
    }
  }

  @Override
  public InputStream open(URI uri) throws IOException {
    return Files.newInputStream(path(uri));
  }

  @Override
  public byte[] read(URI uri) throws IOException {
    return Files.readAllBytes(path(uri));
  }

  @Override
  public boolean exists(URI uri) {
    try {
      return Files.exists(path(uri));
    } catch (IllegalArgumentException e) {
      return false;
    }
  }

  @Override
  public List<URI> list(URI prefix) throws IOException {
    Path p = path(prefix);
    if (!Files.exists(p)) return List.of();
    try (Stream<Path> files = Files.walk(p)) {
      return files.filter(Files::isRegularFile)
          .filter(f -> !f.getFileName().toString().endsWith(".tmp"))
          .sorted().map(Path::toUri).toList();
    }
  }

  @Override
  public Path localPath(URI uri) throws IOException {
    Path p = path(uri);
    if (!Files.exists(p)) throw new NoSuchFileException(p.toString(), null, "no such artifact: " + uri);
    return p;
  }

  private Path path(URI uri) {
    if (uri.getScheme() != null && !uri.getScheme().equals("file")) {
      throw new IllegalArgumentException("local artifact store cannot serve " + uri);
    }
    Path p = Path.of(uri.getPath()).toAbsolutePath().normalize();
    if (!p.startsWith(root)) throw new IllegalArgumentException(uri + " is outside the artifact store " + root.toUri());
    return p;
  }
}
