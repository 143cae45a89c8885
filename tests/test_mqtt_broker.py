"""The broker fixture is real: a paho client publishes and another receives through it."""

import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def test_publish_subscribe_round_trip(mqtt_broker):
    got: list[tuple[str, bytes]] = []
    ready, done = threading.Event(), threading.Event()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-sub")
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("dsrter/test/#", qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, p: ready.set()

    def on_message(c, u, msg):
        got.append((msg.topic, msg.payload))
        done.set()

    sub.on_message = on_message
    sub.connect(mqtt_broker.host, mqtt_broker.port)
    sub.loop_start()
    assert ready.wait(5), "subscription not acknowledged"

    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-pub")
    pub.connect(mqtt_broker.host, mqtt_broker.port)
    pub.loop_start()
    pub.publish("dsrter/test/hello", b'{"x": 1}', qos=1).wait_for_publish(5)
    assert done.wait(5), "message did not arrive"
    assert got == [("dsrter/test/hello", b'{"x": 1}')]
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
