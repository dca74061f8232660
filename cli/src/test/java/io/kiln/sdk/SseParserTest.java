package io.kiln.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.StringReader;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SseParserTest {

    private static List<SseEvent> parse(String text) throws Exception {
        List<SseEvent> events = new ArrayList<>();
        SseParser.parse(new StringReader(text), events::add);
        return events;
    }

    @Test
    void eventsAreSeparatedByBlankLines() throws Exception {
        List<SseEvent> ev = parse("event: progress\ndata: {\"step\":1}\n\nevent: end\ndata: {\"status\":\"Completed\"}\n\n");
        assertEquals(2, ev.size());
        assertEquals(new SseEvent("progress", "{\"step\":1}", null), ev.get(0));
        assertEquals("end", ev.get(1).event());
        assertEquals("Completed", ev.get(1).json().get("status").asText());
    }

    @Test
    void crlfCommentsMultiDataIdAndDefaults() throws Exception {
        List<SseEvent> ev = parse(": keep-alive\r\n\r\nid: 7\r\ndata: a\r\ndata:b\r\n\r\nevent:x\r\nretry: 10\r\n\r\n"
                + "data\n\n");
        assertEquals(2, ev.size(), "comment-only and data-less blocks dispatch nothing");
        assertEquals(new SseEvent("message", "a\nb", "7"), ev.get(0), "default name, joined data, one leading space stripped");
        assertEquals(new SseEvent("message", "", null), ev.get(1), "a bare 'data' field is an empty data line");
    }

    @Test
    void lastEventWithoutTrailingBlankLineIsStillDelivered() throws Exception {
        List<SseEvent> ev = parse("event: end\ndata: {\"status\":\"Failed\"}");
        assertEquals(1, ev.size());
        assertEquals("Failed", ev.get(0).json().get("status").asText());
    }

    @Test
    void bindsTypedData() throws Exception {
        SseEvent e = parse("event: progress\ndata: {\"step\":120,\"totalSteps\":469,\"epoch\":1,\"totalEpochs\":1,"
                + "\"loss\":0.52,\"samplesPerSec\":15000.0,\"unknownField\":true}\n\n").get(0);
        Progress p = e.as(Progress.class);
        assertEquals(120, p.step());
        assertEquals(469, p.totalSteps());
        assertEquals(0.52, p.loss(), 1e-9);
        assertEquals(120.0 / 469, p.fraction(), 1e-9);
    }
}
