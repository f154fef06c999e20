"""Telling the owner what happens: the hub's happenings on a bus, and who listens to it.

`happenings` says what can happen, `bus` hands it from the camera threads to every
listener without ever making a camera wait, `watch` turns capture status into
happenings, and `mqtt` (with the pure `topics`) publishes them to an MQTT broker and
Home Assistant. Only metadata leaves the box: no picture or footage ever goes out here.
"""
