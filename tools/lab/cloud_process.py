# SPDX-License-Identifier: Apache-2.0
"""The lab cloud's processes: start, stop, find, and where they log.

There is no systemd here, so every service is a process of ours in its own
process group, with its pid and its log under the cloud's state directory
(``$NOVA_POSTCOPY_LAB/cloud``): a service that fails to start is named with
the tail of its log, and ``down`` finds everything ``up`` started.
"""


import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

LAB = os.environ.get('NOVA_POSTCOPY_LAB', '/var/tmp/nova-postcopy-lab')
STATE = os.path.join(LAB, 'cloud')
VENV = os.path.join(STATE, 'venv')
HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
START_TIMEOUT_S = 120


class CloudError(Exception):
    pass


def path(*parts):
    return os.path.join(STATE, *parts)


def log_of(name):
    return path('log', '%s.log' % name)


def etc(service, name):
    return path('etc', service, name)


def venv_bin(name):
    return os.path.join(VENV, 'bin', name)


def say(text):
    print('cloud: %s' % text, file=sys.stderr, flush=True)


def run(argv, name, env=None, **kwargs):
    """A set-up command; its output goes to the log of ``name``."""
    with open(log_of(name), 'a') as log:
        log.write('\n$ %s\n' % ' '.join(argv))
        log.flush()
        result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT,
                                env=_env(env), **kwargs)
    if result.returncode:
        raise CloudError('%s: `%s` failed (exit %d); see %s' % (
            name, ' '.join(argv[:3]), result.returncode, log_of(name)))


def _env(extra=None):
    """The caller's environment without what would reconfigure a service.

    tools/run-tests exports Nova's test settings (OS_NOVA_DISABLE_EVENTLET_
    PATCHING=False put nova-api under eventlet inside gunicorn's threads,
    where it never answered), and a user's shell may hold OS_* credentials.
    """
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(('OS_', 'NOVA_', 'PYTHON'))}
    env['PATH'] = '%s:%s' % (os.path.join(VENV, 'bin'), env.get('PATH', ''))
    env.update(extra or {})
    return env


def write(file_path, text, mode=0o640):
    os.makedirs(os.path.dirname(file_path), exist_ok=True)
    with open(file_path, 'w') as handle:
        handle.write(text.lstrip('\n'))
    os.chmod(file_path, mode)


# -- processes ---------------------------------------------------------------

def pid_of(name):
    try:
        with open(path('run', '%s.pid' % name)) as handle:
            pid = int(handle.read())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(('127.0.0.1', port)) == 0


def start(name, argv, port=None, env=None, ready=None):
    """Start a service in its own process group; wait until it serves."""
    if pid_of(name):
        return
    if port and port_open(port):
        raise CloudError(
            '%s: port %d on 127.0.0.1 is in use by another process; stop it '
            '(ss -ltnp sport = :%d) and run `tools/lab/cloud up` again'
            % (name, port, port))
    os.makedirs(path('log'), exist_ok=True)
    os.makedirs(path('run'), exist_ok=True)
    log = open(log_of(name), 'a')
    log.write('\n== %s: %s\n' % (time.strftime('%F %T'), ' '.join(argv)))
    log.flush()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=_env(env),
                            start_new_session=True, cwd=STATE)
    with open(path('run', '%s.pid' % name), 'w') as handle:
        handle.write(str(proc.pid))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CloudError('%s exited at start (exit %s); see %s:\n%s' % (
                name, proc.returncode, log_of(name), tail(log_of(name))))
        if (port is None or port_open(port)) and (ready is None or ready()):
            say('%s up (pid %d)' % (name, proc.pid))
            return
        time.sleep(0.5)
    raise CloudError('%s did not come up within %d s; see %s:\n%s' % (
        name, START_TIMEOUT_S, log_of(name), tail(log_of(name))))


def stop(name):
    pid = pid_of(name)
    if pid:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        say('%s stopped' % name)
    try:
        os.unlink(path('run', '%s.pid' % name))
    except FileNotFoundError:
        pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie of ours counts as gone.
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().split()[2] != 'Z'
    except OSError:
        return False


def tail(file_path, lines=15):
    try:
        with open(file_path, errors='replace') as handle:
            return ''.join(handle.readlines()[-lines:])
    except OSError:
        return ''


# The services parse sys.argv with oslo.config when the application loads:
# gunicorn's own arguments must be gone by then.
GUNICORN_CONF = """
import sys
sys.argv[1:] = []
workers = 1
threads = 4
timeout = 120
# No keep-alive: a client that reuses a connection the server just closed
# gets 'Remote end closed connection' (seen with 2 s polls).
keepalive = 0
control_socket_disable = True
"""


def answers_http(port):
    """A response of any kind below 500: the application loaded."""
    try:
        with urllib.request.urlopen('http://127.0.0.1:%d/' % port,
                                    timeout=5) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except (OSError, http.client.HTTPException):
        return False


def wsgi(name, module, port, env, hooks=''):
    conf_file = path('etc', 'gunicorn-%s.conf.py' % name)
    write(conf_file, GUNICORN_CONF + hooks)
    start(name, [venv_bin('gunicorn'), '--config', conf_file, '--bind',
                 '127.0.0.1:%d' % port, module], port=port, env=env,
          ready=lambda: answers_http(port))
