package io.kiln.deploy.server;

import io.kiln.artifacts.ArtifactStore;
import io.kiln.worker.training.ModelArtifacts;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.regex.Pattern;

/**
 * Where models come from: a single model folder (one name), or every folder under an artifact-store
 * prefix (multi-model: the request names the folder).
 */
public interface ModelSource {
  Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

  /** A local path holding the model's files; {@link ServeException} 404 when there is no such model. */
  Path locate(String name) throws IOException;

  /** The model served when a request names none (single-model servers), or null. */
  String defaultModel();

  static ModelSource single(String name, URI model) {
    URI u = ModelArtifacts.normalize(model);
    ArtifactStore store = ArtifactStore.forRoot(u);
    return new ModelSource() {
      @Override
      public Path locate(String n) throws IOException {
        if (!n.equals(name)) throw ServeException.notFound("no model '" + n + "' (this endpoint serves '" + name + "')");
        return store.localPath(u);
      }

      @Override
      public String defaultModel() {
        return name;
      }
    };
  }

  static ModelSource prefix(URI prefix) {
    URI u = ModelArtifacts.folder(prefix);
    ArtifactStore store = ArtifactStore.forRoot(u);
    return new ModelSource() {
      @Override
      public Path locate(String n) throws IOException {
        // the name becomes a path segment: refuse anything that could leave the prefix
        if (!NAME.matcher(n).matches() || n.contains("..")) {
          throw ServeException.badRequest("invalid model name '" + n + "' (letters, digits, '.', '_', '-'; at most 128)");
        }
        try {
          Path p = store.localPath(u.resolve(n));
          if (!Files.exists(p)) throw new NoSuchFileException(p.toString());
          return p;
        } catch (NoSuchFileException e) {
          throw ServeException.notFound("no model '" + n + "' under " + u);
        }
      }

      @Override
      public String defaultModel() {
        return null;
      }
    };
  }
}
