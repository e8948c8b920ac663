"""Rasa custom actions: thin, they read slots, call store/routing services and utter.

Run in-process by the bot (see `bot.dialogue`) or split out with `rasa run actions`.
"""
