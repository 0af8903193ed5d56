//! [`SseParser`]: an incremental parser of a `text/event-stream` body
//! (the WHATWG Server-Sent Events format) into [`SseEvent`]s. It knows
//! nothing of watches or HTTP, only the byte format.

/// The longest SSE line accepted: a 1 MiB value is about 1.4 MiB of base64.
const MAX_SSE_LINE_BYTES: usize = 8 * 1024 * 1024;

/// One dispatched Server-Sent Event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field; empty if absent.
    pub(crate) event: String,
    /// The `data:` lines, joined with `\n`.
    pub(crate) data: String,
    /// The `id:` field, if any.
    pub(crate) id: Option<String>,
}

/// An incremental parser of a `text/event-stream` body (the WHATWG
/// event-stream format): lines end in `\n`, `\r\n` or `\r`; a blank line
/// dispatches the event; lines starting with `:` are comments
/// (keep-alives).
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    /// The previous byte was `\r`, so a `\n` now belongs to it.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseParser {
    /// Consumes `chunk`, appending each completed event to `out`.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\n' => self.end_line(out)?,
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(out)?;
                }
                _ => {
                    if self.line.len() >= MAX_SSE_LINE_BYTES {
                        return Err(format!(
                            "an event-stream line is longer than {MAX_SSE_LINE_BYTES} bytes"
                        ));
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), String> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = String::from_utf8(line).map_err(|_| "an event-stream line is not UTF-8")?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if std::mem::take(&mut self.has_data) {
            out.push(SseEvent {
                event,
                data,
                id: self.id.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&str]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk.as_bytes(), &mut out).unwrap();
        }
        out
    }

    fn event(event: &str, id: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.to_owned(),
            data: data.to_owned(),
            id: Some(id.to_owned()),
        }
    }

    #[test]
    fn sse_events_are_split_on_blank_lines_and_comments_are_ignored() {
        let events =
            parse(&[": keep-alive\n\nevent: put\nid: 3\ndata: {\"a\":1}\n\n: keep-alive\n\n"]);
        assert_eq!(events, vec![event("put", "3", "{\"a\":1}")]);
    }

    #[test]
    fn sse_lines_may_be_split_across_chunks_and_end_in_crlf_or_cr() {
        let events = parse(&[
            "eve",
            "nt: del",
            "ete\r",
            "\nid: 4\rda",
            "ta: x\r\n",
            "\r",
            "\n",
        ]);
        assert_eq!(events, vec![event("delete", "4", "x")]);
    }

    #[test]
    fn sse_data_lines_are_joined_with_newlines_and_need_no_space() {
        let events = parse(&["data:a\ndata: b\ndata\n\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "a\nb\n");
    }

    #[test]
    fn an_sse_event_without_data_is_not_dispatched() {
        assert!(parse(&["event: put\nid: 1\n\n"]).is_empty());
    }
}
