# SPDX-License-Identifier: GPL-2.0-or-later
"""python-dbusmock template: the parts of systemd's Manager that gpuswapd uses, with jobs
that take time, fail or never finish, and unit aliases.

The stock template finishes every job at once and has no Subscribe, LoadUnit or aliases;
real systemd reports the real unit in JobRemoved (gdm.service for a StopUnit of
display-manager.service), and a display manager takes a while to stop.

Parameters (JSON through dbusmock's -p):
  units:          [{"name": "gdm.service", "aliases": ["display-manager.service"],
                    "active": true, "start_ms": 0, "stop_ms": 0}]
  kernel_control: the fake kernel's control file; starting modprobe@vfio_pci.service
                  asks it to load vfio-pci, as the real unit asks the kernel.
  system_state:   SystemState of the Manager ("running" unless given)

Mock methods (org.freedesktop.DBus.Mock), for tests:
  SetJobBehaviour(unit, operation, result, delay_ms): the next "start" or "stop" job of the
      unit ends with result "done", "failed" (JobRemoved says so, the unit is failed) or
      "hang" (the job never finishes); delay_ms -1 keeps the unit's modelled time. For
      modprobe@vfio_pci.service, "modprobe-fails": the job ends "done" and nothing loads.

modprobe@.service behaves as its unit file (systemd's units/modprobe@.service) says:
Type=oneshot without RemainAfterExit, so the unit is inactive again after its job, and
ExecStart=-/sbin/modprobe -abq %i, so the job is "done" whether or not the module loaded.
  SetUnitActive(unit, active), SetSystemState(state)
  SetListDelay(ms): ListUnitsByNames answers that much later (0: at once)
"""
import json

import dbus
from gi.repository import GLib

from dbusmock import MOCK_IFACE, mockobject

BUS_NAME = 'org.freedesktop.systemd1'
MAIN_OBJ = '/org/freedesktop/systemd1'
MAIN_IFACE = 'org.freedesktop.systemd1.Manager'
UNIT_IFACE = 'org.freedesktop.systemd1.Unit'
SYSTEM_BUS = True

VFIO_MODPROBE_UNIT = 'modprobe@vfio_pci.service'


def unit_object_path(name):
    # systemd's bus_label_escape(): every byte outside [A-Za-z0-9] becomes _xx.
    return MAIN_OBJ + '/unit/' + ''.join(c if c.isalnum() else f'_{ord(c):02x}' for c in name)


def load(mock, parameters):
    mock.next_job_id = 1
    mock.units = {}          # every name and alias -> real name
    mock.unit_specs = {}     # real name -> spec
    mock.behaviour = {}      # (real name, operation) -> (result, delay_ms)
    mock.kernel_control = parameters.get('kernel_control')
    mock.list_delay_ms = 0
    mock.AddProperties(MAIN_IFACE, {'Version': 'v252', 'SystemState': parameters.get('system_state', 'running')})
    units = list(parameters.get('units', []))
    units.append({'name': VFIO_MODPROBE_UNIT, 'active': False})
    for spec in units:
        add_unit(mock, spec)


def add_unit(mock, spec):
    name = spec['name']
    names = [name] + spec.get('aliases', [])
    mock.unit_specs[name] = spec
    for alias in names:
        mock.units[alias] = name
    state = 'active' if spec.get('active') else 'inactive'
    mock.AddObject(unit_object_path(name), UNIT_IFACE,
                   {'Id': name, 'Names': dbus.Array(names, signature='s'), 'LoadState': 'loaded',
                    'ActiveState': state, 'SubState': 'running' if state == 'active' else 'dead'}, [])


def real_unit(mock, name):
    name = str(name)
    if name not in mock.units:
        raise dbus.exceptions.DBusException(f'Unit {name} not found.', name='org.freedesktop.systemd1.NoSuchUnit')
    return mock.units[name]


def set_active_state(mock, unit, state):
    sub_state = {'active': 'running', 'inactive': 'dead', 'failed': 'failed'}.get(state, 'start')
    mockobject.objects[unit_object_path(unit)].UpdateProperties(
        UNIT_IFACE, {'ActiveState': state, 'SubState': sub_state})


def enqueue_job(mock, name, operation):
    unit = real_unit(mock, name)
    spec = mock.unit_specs[unit]
    job_id = mock.next_job_id
    mock.next_job_id += 1
    job_path = f'{MAIN_OBJ}/job/{job_id}'
    result, delay_ms = mock.behaviour.pop((unit, operation), ('done', -1))
    if delay_ms < 0:
        delay_ms = spec.get(f'{operation}_ms', 0)
    set_active_state(mock, unit, 'deactivating' if operation == 'stop' else 'activating')

    def finish():
        if unit == VFIO_MODPROBE_UNIT and operation == 'start' and result in ('done', 'modprobe-fails'):
            if result == 'done' and mock.kernel_control:
                with open(mock.kernel_control, 'w') as control:
                    control.write(json.dumps({'op': 'load-driver', 'driver': 'vfio-pci'}))
            set_active_state(mock, unit, 'inactive')
            job_result = 'done'
        elif result == 'done':
            set_active_state(mock, unit, 'active' if operation == 'start' else 'inactive')
            job_result = 'done'
        else:
            set_active_state(mock, unit, 'failed')
            job_result = result
        mock.EmitSignal(MAIN_IFACE, 'JobRemoved', 'uoss', [job_id, job_path, unit, job_result])
        return False

    mock.EmitSignal(MAIN_IFACE, 'JobNew', 'uos', [job_id, job_path, unit])
    if result != 'hang':
        GLib.timeout_add(delay_ms, finish)
    return job_path


@dbus.service.method(MAIN_IFACE, in_signature='', out_signature='')
def Subscribe(self):
    pass


@dbus.service.method(MAIN_IFACE, in_signature='', out_signature='')
def Unsubscribe(self):
    pass


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='o')
def GetUnit(self, name):
    return unit_object_path(real_unit(self, name))


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='o')
def LoadUnit(self, name):
    return unit_object_path(real_unit(self, name))


@dbus.service.method(MAIN_IFACE, in_signature='as', out_signature='a(ssssssouso)',
                     async_callbacks=('reply', 'error'))
def ListUnitsByNames(self, names, reply, error):
    if self.list_delay_ms:
        GLib.timeout_add(self.list_delay_ms, lambda: reply(unit_rows(self, names)) and False)
    else:
        reply(unit_rows(self, names))


def unit_rows(self, names):
    rows = []
    for name in names:
        if str(name) not in self.units:
            rows.append((name, '', 'not-found', 'inactive', 'dead', '', unit_object_path(name), 0, '', '/'))
            continue
        unit = real_unit(self, name)
        properties = mockobject.objects[unit_object_path(unit)].GetAll(UNIT_IFACE)
        rows.append((unit, '', 'loaded', properties['ActiveState'], properties['SubState'], '',
                     unit_object_path(unit), 0, '', '/'))
    return dbus.Array(rows, signature='(ssssssouso)')


@dbus.service.method(MAIN_IFACE, in_signature='ss', out_signature='o')
def StartUnit(self, name, _mode):
    return enqueue_job(self, name, 'start')


@dbus.service.method(MAIN_IFACE, in_signature='ss', out_signature='o')
def StopUnit(self, name, _mode):
    return enqueue_job(self, name, 'stop')


@dbus.service.method(MOCK_IFACE, in_signature='sssi', out_signature='')
def SetJobBehaviour(self, name, operation, result, delay_ms):
    self.behaviour[(real_unit(self, name), str(operation))] = (str(result), int(delay_ms))


@dbus.service.method(MOCK_IFACE, in_signature='sb', out_signature='')
def SetUnitActive(self, name, active):
    set_active_state(self, real_unit(self, name), 'active' if active else 'inactive')


@dbus.service.method(MOCK_IFACE, in_signature='i', out_signature='')
def SetListDelay(self, delay_ms):
    self.list_delay_ms = int(delay_ms)


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='')
def SetSystemState(self, state):
    self.UpdateProperties(MAIN_IFACE, {'SystemState': state})
