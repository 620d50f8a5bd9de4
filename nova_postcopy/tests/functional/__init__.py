# SPDX-License-Identifier: Apache-2.0
# As nova/tests/unit/__init__.py: eventlet (or threading) first.
from nova import monkey_patch

monkey_patch.patch()
