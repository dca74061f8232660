package io.kiln.worker.javamodel;

import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;

/**
 * Loads a user's jar before the worker's class path, so that the jar's own libraries (another Guava,
 * another Jackson) win over the worker's, except for the packages both sides must share: the JDK,
 * DJL (the block the worker trains is a DJL type, and DJL's engine is a process-wide singleton), Kiln's
 * model API and SLF4J. A fat jar that bundles DJL therefore still uses the worker's DJL.
 */
final class ChildFirstClassLoader extends URLClassLoader {
  static final List<String> SHARED = List.of("java.", "javax.", "jdk.", "sun.", "com.sun.", "ai.djl.", "io.kiln.api.",
      "org.slf4j.");

  static {
    ClassLoader.registerAsParallelCapable();
  }

  ChildFirstClassLoader(URL jar, ClassLoader parent) {
    super("kiln-user-jar", new URL[] {jar}, parent);
  }

  static boolean shared(String name) {
    for (String p : SHARED) {
      if (name.startsWith(p)) return true;
    }
    return false;
  }

  @Override
  protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
    if (shared(name)) return super.loadClass(name, resolve);
    synchronized (getClassLoadingLock(name)) {
      Class<?> c = findLoadedClass(name);
      if (c == null) {
        try {
          c = findClass(name);
        } catch (ClassNotFoundException notInJar) {
          c = getParent().loadClass(name);
        }
      }
      if (resolve) resolveClass(c);
      return c;
    }
  }

  @Override
  public URL getResource(String name) {
    URL u = shared(name.replace('/', '.')) ? null : findResource(name);
    return u != null ? u : super.getResource(name);
  }

  @Override
  public Enumeration<URL> getResources(String name) throws IOException {
    List<URL> all = new ArrayList<>(Collections.list(findResources(name)));
    for (URL u : Collections.list(getParent().getResources(name))) {
      if (!all.contains(u)) all.add(u);
    }
    return Collections.enumeration(all);
  }
}
