"""The Session Inspector's web side: the live view page and its socket (the session list, replay
player and charts follow).

Reads sessions through the manager and store; holds no state of its own.
"""
