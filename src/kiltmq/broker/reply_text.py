"""The reply text of channel.close and connection.close, as RabbitMQ writes it."""

from __future__ import annotations

from kiltmq.protocol.errors import AMQPError

__all__ = ["reply_text", "short"]


def reply_text(error: AMQPError) -> str:
    """``error``'s text as RabbitMQ sends it: "NAME - text", cut to a short string."""
    text = error.reply_text
    name = error.reply_name
    if text != name and not text.startswith(name + " -"):
        text = f"{name} - {text}"
    return short(text)


def short(text: str) -> str:
    """Cut ``text`` to the 255 bytes a short string can hold (bytes a client sent that
    were not UTF-8, kept in ``text`` as surrogates, become "?")."""
    try:
        data = text.encode()
    except UnicodeEncodeError:
        data = text.encode("utf-8", "replace")
        text = data.decode()
    if len(data) <= 255:
        return text
    return data[:255].decode(errors="ignore")
