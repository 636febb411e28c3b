// An independent ONVIF client — the npm `onvif` package (pinned in tests/peers/package.json) —
// run against a simulated camera: connects with credentials (WS-UsernameToken, with the time
// offset the library measures from GetSystemDateAndTime), reads the device information,
// profiles, stream URI and snapshot URI, and with --events opens a pull-point subscription
// and waits for a tamper event.
//
// Prints JSON lines on stdout: {"stage":"subscribed"} once the subscription is open (the test
// then makes the camera emit), and a last line with the result. Exit status 0 on success, 2
// when the camera refused the credentials, 1 on any other failure.
//
// usage: node onvif_node_client.js HOST PORT USER PASSWORD [--events]
'use strict';

const { Cam } = require('onvif');

const [host, port, username, password, ...flags] = process.argv.slice(2);
const wantEvents = flags.includes('--events');

function out(obj) {
	process.stdout.write(JSON.stringify(obj) + '\n');
}

function isAuthError(err) {
	const text = String((err && (err.message || err)) || '').toLowerCase();
	return ['notauthorized', 'not authorized', 'unauthorized', 'sender not authorized', '401'].some((k) => text.includes(k));
}

function fail(err) {
	const auth = isAuthError(err);
	out({ error: String((err && err.message) || err), auth });
	process.exit(auth ? 2 : 1);
}

// The library's callbacks are called with the camera as `this`; wrap them as promises.
function call(cam, method, ...args) {
	return new Promise((resolve, reject) => {
		cam[method](...args, (err, data, xml) => (err ? reject(err) : resolve({ data, xml })));
	});
}

function connect() {
	return new Promise((resolve, reject) => {
		const cam = new Cam({ hostname: host, port: Number(port), username, password, timeout: 10000, autoconnect: false });
		cam.connect((err) => (err ? reject(err) : resolve(cam)));
	});
}

// One NotificationMessage as {topic, operation, item, value}, whatever shape linerase gave it.
function eventOf(msg) {
	const topic = (msg.topic && (msg.topic._ || msg.topic)) || '';
	const m = msg.message && msg.message.message ? msg.message.message : {};
	const attrs = m.$ || {};
	let items = m.data && m.data.simpleItem ? m.data.simpleItem : [];
	if (!Array.isArray(items)) items = [items];
	const item = items.map((i) => i.$ || i).find((i) => i && i.Name) || {};
	return { topic: String(topic), operation: attrs.PropertyOperation, item: item.Name, value: String(item.Value) };
}

async function main() {
	const deadline = setTimeout(() => fail(new Error('timed out after 45 s')), 45000);
	const cam = await connect();
	const info = (await call(cam, 'getDeviceInformation')).data;
	const profiles = (cam.profiles || []).map((p) => p.$.token);
	if (profiles.length === 0) {
		// connect() swallows media errors (it only emits a warning): ask again to see why.
		await call(cam, 'getProfiles');
		throw new Error('no profiles');
	}
	const stream = (await call(cam, 'getStreamUri', { protocol: 'RTSP', profileToken: profiles[0] })).data;
	const snapshot = (await call(cam, 'getSnapshotUri', { profileToken: profiles[0] })).data;
	const result = {
		manufacturer: info.manufacturer,
		model: info.model,
		serial: info.serialNumber,
		profiles,
		stream_uri: stream.uri,
		snapshot_uri: snapshot.uri,
		time_shift_ms: cam.timeShift === undefined ? null : Math.round(cam.timeShift - Date.now() + process.uptime() * 1000),
	};
	if (wantEvents) {
		await call(cam, 'createPullPointSubscription');
		out({ stage: 'subscribed' });
		const seen = [];
		let tamper = null;
		while (!tamper) {
			const data = (await call(cam, 'pullMessages', { messageLimit: 10 })).data || {};
			let msgs = data.notificationMessage || [];
			if (!Array.isArray(msgs)) msgs = [msgs];
			for (const msg of msgs) {
				const e = eventOf(msg);
				seen.push(e);
				if (e.topic.endsWith('TamperDetector/Tamper') && e.operation === 'Changed' && e.value === 'true') {
					tamper = e;
				}
			}
		}
		result.events = seen;
		result.tamper = tamper;
		await call(cam, 'unsubscribe').catch(() => {});
	}
	clearTimeout(deadline);
	out(result);
	process.exit(0);
}

main().catch(fail);
