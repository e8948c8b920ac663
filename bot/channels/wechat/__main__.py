"""`python -m bot.channels.wechat "你好"`: one LOCAL push to /wechat, signed like WeChat's."""

from bot.channels.wechat.local import main

raise SystemExit(main())
