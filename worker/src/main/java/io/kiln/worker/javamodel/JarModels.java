package io.kiln.worker.javamodel;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import io.kiln.api.KilnModel;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.training.ModelDefinition;
import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Modifier;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.jar.JarFile;

/**
 * Algorithm {@code java}: a user's {@link KilnModel} from a jar (docs/java-models.md), trained by
 * Kiln's own loop like {@code mlp}. Reserved hyperparameters: {@code kiln_jar} (the jar: absolute path
 * or {@code file:} URI, as the CLI stores it under {@code sources/<sha256>.jar}) and
 * {@code kiln_model_class} (the implementation's binary name).
 */
public final class JarModels {
  public static final String ALGORITHM = "java";
  public static final String JAR = "kiln_jar";
  public static final String MODEL_CLASS = "kiln_model_class";

  private JarModels() {}

  /** A model loaded from a jar; closing it closes the jar's class loader. */
  public record Loaded(ModelDefinition definition, Path jar, ChildFirstClassLoader loader) implements AutoCloseable {
    /** Copies the jar into the model folder ({@code model.jar}), so the model folder is self-contained. */
    public void copyInto(URI modelFolder) throws IOException {
      ArtifactStore.forRoot(modelFolder).upload(jar, modelFolder.resolve("model.jar"));
    }

    @Override
    public void close() {
      try {
        loader.close();
      } catch (IOException ignored) {
        // the jar file stays open until the JVM exits
      }
    }
  }

  /** Loads the job's model class; every problem is an {@link IllegalArgumentException} naming it. */
  public static Loaded load(JobSpec spec, TaskEvents events) throws IOException {
    Map<String, String> hp = spec.getHyperparametersMap();
    String jarValue = hp.getOrDefault(JAR, "").trim();
    String className = hp.getOrDefault(MODEL_CLASS, "").trim();
    if (jarValue.isEmpty()) {
      throw new IllegalArgumentException("hyperparameters." + JAR + " is required for algorithm 'java' (kiln train --jar model.jar)");
    }
    if (className.isEmpty()) {
      throw new IllegalArgumentException("hyperparameters." + MODEL_CLASS + " is required for algorithm 'java' "
          + "(kiln train --model-class com.example.MyModel)");
    }
    Path jar = jarValue.startsWith("/") ? Path.of(jarValue) : pathOf(jarValue);
    if (!Files.isRegularFile(jar)) {
      throw new IllegalArgumentException("model jar " + jarValue + " does not exist on this worker");
    }
    try (JarFile ignored = new JarFile(jar.toFile())) {
      // readable as a jar
    } catch (IOException e) {
      throw new IllegalArgumentException("model jar " + jarValue + " is not a readable jar: " + e.getMessage());
    }
    ChildFirstClassLoader loader = new ChildFirstClassLoader(jar.toUri().toURL(), JarModels.class.getClassLoader());
    try {
      KilnModel model = instantiate(loader, className, jarValue);
      events.info("model class " + className + " loaded from " + jarValue + " in its own class loader");
      return new Loaded(new Adapter(ALGORITHM + ":" + className, model), jar, loader);
    } catch (RuntimeException e) {
      loader.close();
      throw e;
    }
  }

  private static KilnModel instantiate(ClassLoader loader, String className, String jar) {
    Class<?> c;
    try {
      c = Class.forName(className, false, loader);
    } catch (ClassNotFoundException e) {
      throw new IllegalArgumentException("model class " + className + " is not in " + jar);
    } catch (LinkageError e) {
      throw new IllegalArgumentException("model class " + className + " cannot be loaded: " + e);
    }
    if (!KilnModel.class.isAssignableFrom(c)) {
      throw new IllegalArgumentException("model class " + className + " does not implement " + KilnModel.class.getName()
          + " (depend on kiln-model-api with scope provided)");
    }
    if (Modifier.isAbstract(c.getModifiers())) {
      throw new IllegalArgumentException("model class " + className + " is abstract");
    }
    try {
      Constructor<?> k = c.getConstructor();
      return (KilnModel) k.newInstance();
    } catch (NoSuchMethodException e) {
      throw new IllegalArgumentException("model class " + className + " needs a public no-argument constructor");
    } catch (InvocationTargetException e) {
      throw new IllegalArgumentException("model class " + className + "'s constructor failed: " + e.getCause());
    } catch (ReflectiveOperationException | LinkageError e) {
      throw new IllegalArgumentException("model class " + className + " cannot be instantiated: " + e);
    }
  }

  private static Path pathOf(String value) {
    try {
      URI u = URI.create(value);
      if ("file".equals(u.getScheme()) && u.getPath() != null) return Path.of(u.getPath());
    } catch (IllegalArgumentException ignored) {
      // reported below
    }
    throw new IllegalArgumentException("hyperparameters." + JAR + ": '" + value + "' must be an absolute path or a file: URI");
  }

  /** The user's model under the name {@code java:<class>} (recorded in model.json). */
  private record Adapter(String name, KilnModel model) implements ModelDefinition {
    @Override
    public Block build(Map<String, String> hyperparameters, int numClasses) {
      return model.build(hyperparameters, numClasses);
    }

    @Override
    public Shape inputShape(int rows, int cols) {
      return model.inputShape(rows, cols);
    }

    @Override
    public Map<String, String> defaults() {
      return model.defaults();
    }
  }
}
