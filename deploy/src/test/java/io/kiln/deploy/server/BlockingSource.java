package io.kiln.deploy.server;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/** A single model whose loads block until {@link #release}: a request that loads holds its slot meanwhile. */
final class BlockingSource implements ModelSource {
  final CountDownLatch loading = new CountDownLatch(1);
  final CountDownLatch release = new CountDownLatch(1);
  private final String name;
  private final Path model;

  BlockingSource(String name, Path model) {
    this.name = name;
    this.model = model;
  }

  @Override
  public Path locate(String n) throws IOException {
    if (!n.equals(name)) throw ServeException.notFound("no model '" + n + "'");
    loading.countDown();
    try {
      if (!release.await(60, TimeUnit.SECONDS)) throw new IOException("test: the load was never released");
    } catch (InterruptedException e) {
      throw new InterruptedIOException();
    }
    return model;
  }

  @Override
  public String defaultModel() {
    return name;
  }
}
