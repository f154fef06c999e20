"""Telling the owner what happens: the hub's happenings on a bus, and who listens to it.

`happenings` says what can happen, `bus` hands it from the camera threads to every
listener without ever making a camera wait, `watch` turns capture status into
happenings, and `mqtt` (with the pure `topics`) publishes them to an MQTT broker and
Home Assistant. `notify` is the alert thread: event starts through the pure `policy`
(cooldown, quiet hours, snooze, per-camera switches) to the targets, `push` (Web Push,
signed with the `vapid` key) and `webhook`, in the vocabulary of `delivery`. `service`
wires them for the daemon. Only metadata leaves the box: no picture or footage ever
goes out here.
"""
