package io.kiln.cli;

import java.io.PrintWriter;

/**
 * A one-line spinner on a terminal ({@code \r}-rewritten: frame, title, current state, seconds);
 * without a terminal, each new state is printed once on its own line.
 */
final class Spinner implements AutoCloseable {
    private static final String FRAMES = "|/-\\";
    private final PrintWriter err;
    private final boolean interactive;
    private final String title;
    private final long startNanos = System.nanoTime();
    private String last = "";
    private int frame;
    private int lastWidth;

    Spinner(PrintWriter err, boolean interactive, String title) {
        this.err = err;
        this.interactive = interactive;
        this.title = title;
        if (!interactive) {
            err.println(title + "...");
            err.flush();
        }
    }

    synchronized void update(String state) {
        if (interactive) {
            long secs = (System.nanoTime() - startNanos) / 1_000_000_000L;
            String line = FRAMES.charAt(frame++ % FRAMES.length()) + " " + title + ": " + state + " (" + secs + "s)";
            int pad = Math.max(0, lastWidth - line.length());
            err.print("\r" + line + " ".repeat(pad));
            lastWidth = line.length();
            err.flush();
        } else if (!state.equals(last)) {
            err.println("  " + state);
            err.flush();
        }
        last = state;
    }

    @Override
    public synchronized void close() {
        if (interactive && lastWidth > 0) {
            err.print("\r" + " ".repeat(lastWidth) + "\r");
            err.flush();
        }
    }
}
