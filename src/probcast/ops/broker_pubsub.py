"""Cycle-ready messages on Google Cloud Pub/Sub (``pip install "probcast[pubsub]"``).

Not tested live here (no Pub/Sub emulator or project in CI): the unit test drives this adapter
with a fake client object that records the calls. The mapping of the ``broker:`` block:

- ``url: pubsub://PROJECT``; ``stream``: the topic; ``group``: the subscription (create it on
  the topic beforehand, e.g. ``gcloud pubsub subscriptions create``); ``dead_letter``: a topic.
- **receive**: a synchronous ``pull`` of one message. Its delivery count is Pub/Sub's
  ``delivery_attempt``, which Pub/Sub fills only when the subscription has a dead-letter
  policy: give it one (``--dead-letter-topic``, ``--max-delivery-attempts`` >= ``max_tries``),
  or every delivery counts as the first and only the consumer's own failures reach the dead
  letter.
- **ack**: ``acknowledge``; **extend**: ``modify_ack_deadline`` to ``claim_idle_seconds``
  (at most 600); **nack**: ``modify_ack_deadline`` to the retry delay (0: redeliver now; a try
  always counts); **dead_letter**: publish the body with the reason as attributes, then ack.
"""

from __future__ import annotations

import logging
from typing import Any

from probcast.ops.broker import BrokerConfig, BrokerError, Delivery

log = logging.getLogger(__name__)
MAX_ACK_DEADLINE = 600


def _clients() -> tuple[Any, Any]:
    try:
        from google.cloud import pubsub_v1  # type: ignore[import-not-found,unused-ignore]
    except ImportError as err:
        raise BrokerError(
            'the Pub/Sub broker needs google-cloud-pubsub: pip install "probcast[pubsub]"'
        ) from err
    return pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()


class PubSubBroker:
    """A consumer of a Pub/Sub subscription (see the module docstring).

    Args:
        config: The broker settings (``url: pubsub://PROJECT``).
        consumer: This consumer's name (logs only: Pub/Sub has no named consumers).
        client: ``(publisher, subscriber)`` to use instead of google-cloud-pubsub's clients.
    """

    def __init__(self, config: BrokerConfig, consumer: str, client: Any = None) -> None:
        self.config = config
        self.consumer = consumer
        self.project = config.url.partition("://")[2].strip("/")
        if not self.project:
            raise BrokerError(f"broker.url: expected pubsub://PROJECT, got {config.url!r}")
        self.publisher, self.subscriber = client if client is not None else _clients()
        self.topic = self.publisher.topic_path(self.project, config.stream)
        self.dead_topic = self.publisher.topic_path(self.project, config.dead_letter)
        self.subscription = self.subscriber.subscription_path(self.project, config.group)

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as err:  # google.api_core errors: not importable without the extra
            raise BrokerError(f"pubsub {what} on {self.subscription} failed: {err}") from err

    def publish(self, body: bytes, **attributes: str) -> str:
        """Publish to the topic and wait for the message id."""
        future = self._call("publish", self.publisher.publish, self.topic, body, **attributes)
        return str(self._call("publish", future.result, timeout=60))

    def receive(self, timeout: float) -> Delivery | None:
        """Pull one message (``None`` when none came within ``timeout`` seconds)."""
        request = {"subscription": self.subscription, "max_messages": 1}
        try:
            response = self.subscriber.pull(request=request, timeout=max(timeout, 1.0))
        except Exception as err:
            if type(err).__name__ in ("DeadlineExceeded", "RetryError"):
                return None  # nothing arrived in time
            raise BrokerError(f"pubsub pull on {self.subscription} failed: {err}") from err
        for received in response.received_messages:
            message = received.message
            return Delivery(
                id=str(message.message_id),
                body=bytes(message.data),
                deliveries=max(1, int(received.delivery_attempt or 0)),
                token=str(received.ack_id),
            )
        return None

    def _deadline(self, msg: Delivery, seconds: float) -> None:
        request = {
            "subscription": self.subscription,
            "ack_ids": [msg.token],
            "ack_deadline_seconds": int(min(MAX_ACK_DEADLINE, max(0.0, seconds))),
        }
        self._call("modify_ack_deadline", self.subscriber.modify_ack_deadline, request=request)

    def ack(self, msg: Delivery) -> None:
        """Acknowledge the message."""
        request = {"subscription": self.subscription, "ack_ids": [msg.token]}
        self._call("acknowledge", self.subscriber.acknowledge, request=request)

    def extend(self, msg: Delivery) -> None:
        """Push the ack deadline ``claim_idle_seconds`` ahead."""
        self._deadline(msg, self.config.claim_idle_seconds)

    def nack(self, msg: Delivery, delay: float, *, counts: bool = True) -> None:
        """Redeliver after ``delay`` seconds (Pub/Sub counts every delivery: ``counts`` unused)."""
        self._deadline(msg, delay)

    def dead_letter(self, msg: Delivery, reason: str) -> None:
        """Publish the message to the dead-letter topic with the reason, then acknowledge it."""
        attributes = {
            "id": msg.id,
            "subscription": self.subscription,
            "deliveries": str(msg.deliveries),
            "reason": reason[:1000],
            "consumer": self.consumer,
        }
        future = self._call(
            "publish", self.publisher.publish, self.dead_topic, msg.body, **attributes
        )
        self._call("publish", future.result, timeout=60)
        self.ack(msg)

    def close(self) -> None:
        """Close the subscriber's channel."""
        close = getattr(self.subscriber, "close", None)
        if close is not None:
            close()
