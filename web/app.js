// The vitals dashboard: pages over the JSON API of the server that serves it.
// State lives in the URL's fragment (#/page/arg?key=value), so a view can be
// shared; the token lives in this browser's storage and goes out only as an
// `Authorization: Bearer` header to this origin.
'use strict';

(() => {
  // ------------------------------------------------------------------ words
  const WORDS = {
    en: {
      'nav.overview': 'Overview', 'nav.accounts': 'My accounts', 'nav.account': 'Account', 'nav.product': 'Product', 'nav.reports': 'Reports',
      'signout': 'Sign out', 'lang': '中文',
      'login.title': 'Sign in to vitals', 'login.token': 'Access token', 'login.submit': 'Sign in',
      'login.hint': 'Paste the token your administrator gave you. On its first run, vitals serve prints a link that signs you in.',
      'ctl.as_of': 'As of', 'ctl.days': 'Period (days)', 'ctl.from': 'From', 'ctl.to': 'To', 'ctl.csm': 'CSM', 'ctl.all_csms': 'All CSMs',
      'ctl.steps': 'Funnel steps (comma-separated)', 'ctl.window': 'Conversion window', 'ctl.breakdown': 'Breakdown', 'ctl.none': 'None',
      'ctl.cohort_event': 'Cohort event', 'ctl.return_event': 'Return event', 'ctl.period': 'Period', 'apply': 'Apply',
      'period.day': 'Day', 'period.week': 'Week', 'period.month': 'Month',
      'overview.title': 'Overview', 'overview.sub': 'Every account you can see, as of {as_of}: activity, health, renewals.',
      'overview.activity': 'Activity per day', 'overview.bands': 'Accounts by quadrant and health band', 'overview.renewals': 'Renewal horizon (days to renewal) by health band',
      'overview.moved': 'Accounts whose health moved most', 'accounts.alerts': 'Alerts: who needs you now',
      'accounts.alerts_note': 'Each rule that holds for an account today, and the day since which it has held every day (within four weeks).',
      'severity.high': 'high', 'severity.medium': 'medium', 'severity.low': 'low',
      'rule.red_health': 'health in the red band', 'rule.key_users_inactive': 'key users inactive', 'rule.renewal_at_risk': 'renewal at risk',
      'rule.health_dropped': 'health dropped', 'rule.mrr_contracted': 'MRR contracted', 'account.health_history': 'Health and temperature, week by week',
      'account.history_note': 'Each point is the score of the {days} days up to that day, as the health report gave it then.', 'overview.revenue': 'Revenue retention by month: net (NRR) and gross (GRR), and MRR at the end of each month',
      'revenue.none': 'This lake has no subscriptions, so there is no revenue to show: load them with vitals ingest --table subscriptions.', 'kpi.accounts': 'Accounts', 'kpi.paid': 'Paying accounts', 'kpi.green': 'Healthy (green)',
      'kpi.red': 'At risk (red)', 'kpi.avg_health': 'Average health', 'kpi.active_users': 'Active users (last day)',
      'accounts.title': 'My accounts', 'accounts.sub': 'Which of your accounts need you, as of {as_of} (the last {days} days against the {days} before).',
      'accounts.declining': 'Declining accounts', 'accounts.decline_chart': 'Fall in activity (%)', 'accounts.quadrant': 'Health × temperature',
      'accounts.quadrant_note': 'One dot per account; the lines are the thresholds, each quadrant has its play. Click a dot to open the account.',
      'accounts.stages': 'Lifecycle stages', 'accounts.list': 'Accounts',
      'account.sub': '{plan} · CSM {csm} · as of {as_of}', 'account.usage': 'Usage trend', 'account.key_users': 'Key users and everyone else',
      'account.key_chart': 'Minutes per user: this period and the one before', 'account.users': 'Users', 'account.modules': 'Share of time per module (100% per day)',
      'user.events': 'Events, the latest first (at most 200)', 'user.usage': 'Days of use: visits, page views and minutes', 'nav.user': 'User',
      'account.lifecycle': 'Lifecycle and milestones', 'account.features': 'Features used in the last {days} days, against the {days} before', 'account.interventions': 'CSM interventions and their effect', 'account.health': 'Health',
      'account.timeline': 'What happened, in order (last 90 days)', 'timeline.usage': 'usage', 'timeline.milestone': 'milestone', 'timeline.key_user_stopped': 'key user stopped',
      'timeline.band_change': 'band change', 'timeline.alert': 'alert', 'timeline.intervention': 'intervention', 'timeline.subscription': 'subscription',
      'product.title': 'Product', 'product.sub': 'Sign-up funnel, retention, the early behaviour that predicts it, and where time goes.',
      'product.funnel': 'Funnel', 'product.retention': 'Retention by cohort (% of the cohort)', 'product.curve': 'Retention curve',
      'product.magic': 'Magic number: early behaviour that predicts retention', 'product.features': 'Feature retention (percentage points with vs. without)',
      'product.modules': 'Share of time per module (100% per day)', 'product.channels': 'Channel quality',
      'product.paths': 'Paths after {event} (first day, repeats collapsed)', 'product.top_paths': 'Most common paths after {event}',
      'product.dropoffs': 'Who reached {event} but not {next}, and what they did next',
      'product.funnel_click': 'Click a bar to see who dropped out before that step.', 'product.correlation_note': 'Green: goes with converting; red: with dropping out; grey: no evidence either way (the 95% interval includes 1).', 'product.convert': 'Time from {a} to {b}', 'product.cumulative': 'up to here', 'product.correlation': 'What goes with converting (odds ratio, 95% interval)',
      'ctl.unit': 'Count', 'ctl.ignore': 'Paths leave out', 'unit.user': 'Users', 'unit.account': 'Accounts',
      'correlation.success': 'success', 'correlation.failure': 'failure', 'correlation.none': 'no evidence',
      'reports.title': 'Reports', 'reports.sub': 'Every report the server has; the ones without a page of their own show as a table.',
      'report.run': 'Run', 'report.csv': 'Download CSV', 'report.rows': '{n} rows', 'report.needs': 'Give {args} above, then Apply.',
      'loading': 'Loading…', 'empty': 'No rows for these settings.', 'prev': 'previous period', 'vs_prev': 'vs. the period before',
      'accounts.decline_note': 'Red: the key users stopped (concentrated); orange: most users stopped (broad) or use it less (intensity).', 'other': 'other',
      'no_account': 'This token sees no account.', 'open_account': 'Open an account from My accounts.',
      'stage.onboarding': 'onboarding', 'stage.adoption': 'adoption', 'stage.growth': 'growth', 'stage.renewal': 'renewal',
      'band.green': 'green', 'band.yellow': 'yellow', 'band.red': 'red', 'none': 'none',
      'bucket.past': 'past', 'bucket.30': '≤ 30', 'bucket.60': '31–60', 'bucket.90': '61–90', 'bucket.180': '91–180', 'bucket.more': '> 180', 'bucket.none': 'no date',
    },
    zh: {
      'nav.overview': '总览', 'nav.accounts': '我的客户', 'nav.account': '客户', 'nav.product': '产品', 'nav.reports': '报表',
      'signout': '退出', 'lang': 'English',
      'login.title': '登录 vitals', 'login.token': '访问令牌', 'login.submit': '登录',
      'login.hint': '粘贴管理员给你的令牌。vitals serve 首次运行时会打印一个可直接登录的链接。',
      'ctl.as_of': '截至', 'ctl.days': '周期（天）', 'ctl.from': '从', 'ctl.to': '到', 'ctl.csm': '客户成功经理', 'ctl.all_csms': '全部',
      'ctl.steps': '漏斗步骤（逗号分隔）', 'ctl.window': '转化窗口期', 'ctl.breakdown': '细分维度', 'ctl.none': '无',
      'ctl.cohort_event': '初始行为', 'ctl.return_event': '回访行为', 'ctl.period': '周期', 'apply': '应用',
      'period.day': '日', 'period.week': '周', 'period.month': '月',
      'overview.title': '总览', 'overview.sub': '你能看到的全部客户，截至 {as_of}：活跃、健康度、续约。',
      'overview.activity': '每日活跃', 'overview.bands': '按象限与健康等级的客户分布', 'overview.renewals': '续约时间分布（距续约天数）与健康等级',
      'overview.moved': '健康度变化最大的客户', 'accounts.alerts': '预警：现在需要你跟进的客户',
      'accounts.alerts_note': '今天对该客户成立的每条规则，以及从哪一天起连续成立（四周内）。',
      'severity.high': '高', 'severity.medium': '中', 'severity.low': '低',
      'rule.red_health': '健康度处于红色', 'rule.key_users_inactive': '关键用户不活跃', 'rule.renewal_at_risk': '续约有风险',
      'rule.health_dropped': '健康度下降', 'rule.mrr_contracted': 'MRR 减少', 'account.health_history': '健康度与温度（按周）',
      'account.history_note': '每个点是截至当天 {days} 天的得分，与当时健康度报表的结果一致。', 'overview.revenue': '按月收入留存：净收入留存（NRR）、总收入留存（GRR）与月末 MRR',
      'revenue.none': '数据湖中没有订阅数据，无法显示收入：请用 vitals ingest --table subscriptions 导入。', 'kpi.accounts': '客户数', 'kpi.paid': '付费客户', 'kpi.green': '健康（绿）',
      'kpi.red': '有风险（红）', 'kpi.avg_health': '平均健康度', 'kpi.active_users': '活跃用户（最后一天）',
      'accounts.title': '我的客户', 'accounts.sub': '截至 {as_of}，哪些客户需要你（最近 {days} 天对比之前 {days} 天）。',
      'accounts.declining': '活跃下降的客户', 'accounts.decline_chart': '活跃下降幅度（%）', 'accounts.quadrant': '健康度 × 温度',
      'accounts.quadrant_note': '每个点是一个客户；线是阈值，每个象限有对应的应对策略。点击圆点打开客户。',
      'accounts.stages': '生命周期阶段', 'accounts.list': '客户列表',
      'account.sub': '{plan} · 客户成功经理 {csm} · 截至 {as_of}', 'account.usage': '使用趋势', 'account.key_users': '关键用户与其他用户',
      'account.key_chart': '每位用户的使用时长（分钟）：本期与上期', 'account.users': '用户', 'account.modules': '各模块使用时长占比（每天 100%）',
      'user.events': '行为明细（最新在前，最多 200 条）', 'user.usage': '每日使用：访问、浏览量与时长', 'nav.user': '用户',
      'account.lifecycle': '生命周期与里程碑', 'account.features': '最近 {days} 天使用的功能（与之前 {days} 天对比）', 'account.interventions': '客户成功经理的干预及效果', 'account.health': '健康度',
      'account.timeline': '账户时间线（近 90 天）', 'timeline.usage': '使用', 'timeline.milestone': '里程碑', 'timeline.key_user_stopped': '关键用户停用',
      'timeline.band_change': '健康色带变化', 'timeline.alert': '预警', 'timeline.intervention': '干预', 'timeline.subscription': '订阅',
      'product.title': '产品', 'product.sub': '注册漏斗、留存、预测留存的早期行为，以及时间花在哪里。',
      'product.funnel': '转化漏斗', 'product.retention': '分组留存（占分组的 %）', 'product.curve': '留存曲线',
      'product.magic': '魔法数字：预测留存的早期行为', 'product.features': '功能留存（使用与未使用相差的百分点）',
      'product.modules': '各模块使用时长占比（每天 100%）', 'product.channels': '渠道质量',
      'product.paths': '{event} 之后的路径（首日，连续重复合并）', 'product.top_paths': '{event} 之后最常见的路径',
      'product.dropoffs': '到达 {event} 但未到达 {next} 的用户，以及他们接下来做了什么',
      'product.funnel_click': '点击柱形，查看在该步骤之前流失的用户。', 'product.correlation_note': '绿色：与转化正相关；红色：与流失相关；灰色：无证据（95% 区间包含 1）。', 'product.convert': '从 {a} 到 {b} 的转化时长', 'product.cumulative': '累计', 'product.correlation': '与转化相关的因素（优势比，95% 区间）',
      'ctl.unit': '统计对象', 'ctl.ignore': '路径中忽略的行为', 'unit.user': '用户', 'unit.account': '客户（公司）',
      'correlation.success': '促进转化', 'correlation.failure': '阻碍转化', 'correlation.none': '无证据',
      'reports.title': '报表', 'reports.sub': '服务器上的全部报表；没有专门页面的以表格显示。',
      'report.run': '运行', 'report.csv': '下载 CSV', 'report.rows': '{n} 行', 'report.needs': '请先在上方填写 {args}，再点“应用”。',
      'loading': '加载中…', 'empty': '当前条件下没有数据。', 'prev': '上一周期', 'vs_prev': '较上一周期',
      'accounts.decline_note': '红色：关键用户停止使用（集中型）；橙色：大部分用户停止（全面型）或使用减少（强度型）。', 'other': '其他',
      'no_account': '该令牌看不到任何客户。', 'open_account': '请从“我的客户”打开一个客户。',
      'stage.onboarding': '上手期', 'stage.adoption': '采用期', 'stage.growth': '增长期', 'stage.renewal': '续约期',
      'band.green': '绿', 'band.yellow': '黄', 'band.red': '红', 'none': '无',
      'bucket.past': '已过期', 'bucket.30': '≤ 30', 'bucket.60': '31–60', 'bucket.90': '61–90', 'bucket.180': '91–180', 'bucket.more': '> 180', 'bucket.none': '无日期',
    },
  };
  // Column names as the tables and charts label them (the rest are shown as they are).
  const COLUMNS = {
    en: {
      org_id: 'Account id', name: 'Name', plan: 'Plan', csm: 'CSM', health: 'Health', temperature: 'Temperature', band: 'Band', quadrant: 'Quadrant',
      play: 'Play', decline_pct: 'Decline %', pattern: 'Pattern', days_to_renewal: 'Days to renewal', arr: 'ARR', renewal_date: 'Renewal',
      stage: 'Stage', user_id: 'User', role: 'Role', is_key_user: 'Key user', logins: 'Logins', visits: 'Visits', duration_min: 'Minutes',
      minutes: 'Minutes', active_users: 'Active users', login_users: 'Login users', page_views: 'Page views', last_seen: 'Last seen',
      health_change: 'Health change', moved_most: 'Moved most', users: 'Users', dropped: 'Dropped', event: 'Event', step: 'Step',
      kind: 'Kind', detail: 'What happened', change: 'Change', who: 'Who', at: 'At', change_pct: 'Change %', effect_pct_points: 'Effect (pct points)', milestones: 'Milestones',
      next_milestone: 'Next milestone', days_to_first_value: 'Days to first value', key_users_lost: 'Key users lost', rank: 'Rank',
      retained_pct: 'Retained %', cohort_start: 'Cohort', period_k: 'Period', share_pct: 'Share %', module: 'Module', day: 'Day',
      pages_per_visit: 'Pages per visit', breakdown: 'Breakdown', conversion_from_previous_pct: 'From previous step %',
      conversion_from_first_pct: 'From first step %', median_hours_from_previous: 'Median hours from previous', section: 'Section',
      label: 'Strength', phi: 'phi', ppv_pct: 'Stay when done %', support_pct: 'Users who did it %', users_with: 'Users with',
      period_start: 'Period', mrr_start: 'MRR at start', new: 'New', expansion: 'Expansion', contraction: 'Contraction', churned: 'Churned',
      rule: 'Rule', severity: 'Severity', first_seen: 'Since', reason: 'Why',
      reactivation: 'Reactivation', mrr_end: 'MRR at end', nrr_pct: 'NRR %', grr_pct: 'GRR %', logo_churn_pct: 'Accounts churned %',
      path_text: 'Path', reached_at: 'Reached at', next_events: 'Next events', odds_ratio: 'Odds ratio', ci_low: '95% from', ci_high: '95% to',
      success_with: 'Converted, with', failure_with: 'Not converted, with', success_without: 'Converted, without', failure_without: 'Not converted, without',
      cumulative_pct: 'Cumulative %', accounts: 'Accounts', utm_source: 'Source', browser: 'Browser', os: 'OS', region: 'Region', event_time: 'Time', page: 'Page', session_id: 'Visit', user_share_pct: 'Share of active users %', first_used: 'First used', correlation: 'Correlation', value: 'Value',
    },
    zh: {
      org_id: '客户 ID', name: '名称', plan: '套餐', csm: '客户成功经理', health: '健康度', temperature: '温度', band: '健康等级', quadrant: '象限',
      play: '应对策略', decline_pct: '下降 %', pattern: '下降模式', days_to_renewal: '距续约天数', arr: 'ARR', renewal_date: '续约日期',
      stage: '阶段', user_id: '用户', role: '角色', is_key_user: '关键用户', logins: '登录次数', visits: '访问次数', duration_min: '时长（分钟）',
      minutes: '时长（分钟）', active_users: '活跃用户', login_users: '登录用户', page_views: '浏览量', last_seen: '最近活跃',
      health_change: '健康度变化', moved_most: '变化最大的指标', users: '用户数', dropped: '流失', event: '事件', step: '步骤',
      kind: '类型', detail: '发生了什么', change: '变化', who: '人员', at: '时间', change_pct: '变化 %', effect_pct_points: '效果（百分点）', milestones: '里程碑',
      next_milestone: '下一个里程碑', days_to_first_value: '首次价值天数', key_users_lost: '流失关键用户', rank: '排名',
      retained_pct: '留存 %', cohort_start: '分组', period_k: '周期', share_pct: '占比 %', module: '模块', day: '日期',
      visitors: '访客', new_users: '新用户', bounce_rate_pct: '跳出率 %', signup_rate_pct: '注册率 %', conversion_pct: '转化率 %',
      phi: 'phi 相关系数', label: '结论', ppv_pct: '做到后留存 %', support_pct: '做到的用户 %', n: '次数', pages_per_visit: '每次访问页数',
      breakdown: '细分', conversion_from_previous_pct: '较上一步转化 %', conversion_from_first_pct: '较第一步转化 %',
      median_hours_from_previous: '距上一步中位小时数', section: '类别', users_with: '做到的用户数', utm_source: '来源', utm_medium: '媒介', utm_campaign: '活动',
      period_start: '周期', mrr_start: '期初 MRR', new: '新增', expansion: '增购', contraction: '降级', churned: '流失',
      rule: '规则', severity: '严重程度', first_seen: '开始于', reason: '原因',
      reactivation: '回流', mrr_end: '期末 MRR', nrr_pct: '净收入留存 %', grr_pct: '总收入留存 %', logo_churn_pct: '客户流失率 %',
      path_text: '路径', reached_at: '到达时间', next_events: '接下来的行为', odds_ratio: '优势比', ci_low: '95% 下限', ci_high: '95% 上限',
      success_with: '有此项·转化', failure_with: '有此项·未转化', success_without: '无此项·转化', failure_without: '无此项·未转化',
      correlation: '相关性', value: '取值', event_time: '时间', page: '页面', session_id: '访问', user_share_pct: '占活跃用户 %', first_used: '首次使用', cumulative_pct: '累计 %', accounts: '客户数', browser: '浏览器', os: '操作系统',
    },
  };
  const BAND_COLOURS = { green: '#2e9f5b', yellow: '#d9a400', red: '#d64545' };

  let lang = localStorage.getItem('vitals.lang') || ((navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en');
  const tr = (key, vars) => {
    let s = (WORDS[lang] && WORDS[lang][key]) || WORDS.en[key] || key;
    for (const [k, v] of Object.entries(vars || {})) s = s.split(`{${k}}`).join(String(v));
    return s;
  };
  const colName = (c) => {
    const words = COLUMNS[lang] || COLUMNS.en;
    if (words[c]) return words[c];
    let m = c.match(/^(.*)_change_pct$/);
    if (m) return `${colName(m[1])} ${lang === 'zh' ? '变化 %' : 'change %'}`;
    m = c.match(/^(.*)_prev$/);
    if (m) return `${colName(m[1])} ${lang === 'zh' ? '（上期）' : '(before)'}`;
    if (COLUMNS.en[c]) return COLUMNS.en[c];
    const text = c.replace(/_pct$/, ' %').replace(/_min$/, ' (min)').replace(/_/g, ' ');
    return text.charAt(0).toUpperCase() + text.slice(1);
  };
  const word = (prefix, v) => (v === null || v === undefined ? tr('none') : ((WORDS[lang][`${prefix}.${v}`] || WORDS.en[`${prefix}.${v}`]) ? tr(`${prefix}.${v}`) : String(v)));
  const fmt = (v, digits = 1) => {
    if (v === null || v === undefined) return '–';
    if (typeof v === 'number') return new Intl.NumberFormat(lang === 'zh' ? 'zh-CN' : 'en-US', { maximumFractionDigits: Number.isInteger(v) ? 0 : digits }).format(v);
    if (typeof v === 'boolean') return v ? '✓' : '';
    if (Array.isArray(v)) return v.map((x) => fmt(x)).join(' → ');
    if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)) return v.slice(0, 16).replace('T', ' ');
    return String(v);
  };

  // ------------------------------------------------------------------ DOM
  const h = (tag, attrs, ...children) => {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  };
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ URL state
  const route = () => {
    const raw = location.hash.replace(/^#\/?/, '');
    const [path, query] = raw.split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    return { page: parts[0] || '', arg: parts[1] || '', q: Object.fromEntries(new URLSearchParams(query || '')) };
  };
  const link = (page, arg, q) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q || {})) if (v !== '' && v !== null && v !== undefined) params.set(k, v);
    const s = params.toString();
    return `#/${page}${arg ? '/' + encodeURIComponent(arg) : ''}${s ? '?' + s : ''}`;
  };

  // ------------------------------------------------------------------ API
  let token = localStorage.getItem('vitals.token');
  let me = null;
  class ApiError extends Error {
    constructor(status, body) { super(body.error || `HTTP ${status}`); this.status = status; this.code = body.code; }
  }
  const call = async (path, params, accept) => {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== '' && v !== null && v !== undefined) qs.set(k, v);
    const url = `/api/v1/${path}${qs.toString() ? '?' + qs : ''}`;
    const res = await fetch(url, { headers: { Authorization: `Bearer ${token}`, Accept: accept || 'application/json' } });
    if (!res.ok) {
      let body = {};
      try { body = await res.json(); } catch (_) { body = { error: `HTTP ${res.status}` }; }
      if (res.status === 401) { signOut(body.error); }
      throw new ApiError(res.status, body);
    }
    return accept === 'text/csv' ? res.text() : res.json();
  };
  // A report asked again within a minute (the next page often needs the same
  // health scores) is answered from memory; a failure is not kept.
  const answers = new Map();
  const report = (name, params) => {
    const key = `${name}?${new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v !== '' && v !== null && v !== undefined))}`;
    const hit = answers.get(key);
    if (hit && Date.now() - hit.at < 60000) return hit.answer;
    const answer = call(`reports/${encodeURIComponent(name)}`, params);
    answers.set(key, { at: Date.now(), answer });
    answer.catch(() => answers.delete(key));
    return answer;
  };

  // ------------------------------------------------------------------ charts
  // Every chart drawn on the page, with the rows it was given: the browser test
  // checks each against the marks ECharts drew.
  let charts = [];
  window.vitalsCharts = charts;
  const resetCharts = () => {
    for (const c of charts) c.chart.dispose();
    charts = [];
    window.vitalsCharts = charts;
  };
  const chart = (el, id, option, rows, source, marks) => {
    const c = echarts.init(el, null, { renderer: 'canvas' });
    // Drawn in one go, not over several frames, so the page is complete when it says so.
    for (const s of option.series || []) s.progressive = 0;
    c.setOption(Object.assign({ animation: false, textStyle: { fontFamily: getComputedStyle(document.body).fontFamily } }, option));
    charts.push({ id, chart: c, rows, source, marks: marks || 'sum' });
    el.dataset.chart = id;
    el.dataset.rows = String(rows);
    return c;
  };
  window.addEventListener('resize', () => charts.forEach((c) => c.chart.resize()));
  const baseGrid = { left: 56, right: 56, top: 40, bottom: 40, containLabel: true };
  const legend = { top: 0, type: 'scroll' };

  // ------------------------------------------------------------------ building blocks
  const card = (title, cls, note) => {
    const body = h('div', { class: 'body' }, h('div', { class: 'loading' }, tr('loading')));
    const el = h('section', { class: `card ${cls || ''}` }, h('h2', {}, title), note ? h('div', { class: 'note' }, note) : null, body);
    return { el, body };
  };
  const fill = (body, ...nodes) => { body.replaceChildren(...nodes); };
  const showError = (body, e) => fill(body, h('div', { class: 'error', role: 'alert' }, e.message || String(e)));
  const table = (rows, columns, opts) => {
    opts = opts || {};
    const cols = columns || (rows[0] ? Object.keys(rows[0]) : []);
    if (!rows.length) return h('div', { class: 'empty' }, tr('empty'));
    const head = h('tr', {}, cols.map((c) => h('th', {}, colName(c))));
    const body = rows.map((r) => h('tr', { 'data-org': r.org_id || null }, cols.map((c) => {
      const v = r[c];
      let content = fmt(v);
      if (c === 'user_id' && v && opts.linkUsers) content = h('a', { href: link('user', v, { org: r.org_id }) }, v);
      else if (c === 'name' && r.org_id && opts.linkAccounts) content = h('a', { href: link('account', r.org_id, opts.keep) }, fmt(v));
      else if (c === 'name' && r.user_id && opts.userOf) content = h('a', { href: link('user', r.user_id, Object.assign({ org: opts.userOf }, opts.keep)) }, fmt(v ?? r.user_id));
      else if (c === 'band' && v) content = [h('span', { class: `band ${v}` }), word('band', v)];
      else if (c === 'stage') content = word('stage', v);
      else if (c === 'kind' && opts.kinds) content = word(opts.kinds, v);
      else if (c === 'correlation') content = word('correlation', v);
      else if (/^(odds_ratio|ci_low|ci_high)$/.test(c) && typeof v === 'number') content = new Intl.NumberFormat(lang === 'zh' ? 'zh-CN' : 'en-US', { maximumSignificantDigits: 3 }).format(v);
      if (/_change_pct$|^change_pct$|^health_change$/.test(c) && typeof v === 'number') return h('td', { class: `num ${v < 0 ? 'down' : v > 0 ? 'up' : ''}` }, (v > 0 ? '+' : '') + fmt(v));
      return h('td', { class: typeof v === 'number' ? 'num' : '' }, content);
    })));
    return h('div', { class: 'tablewrap' }, h('table', {}, h('thead', {}, head), h('tbody', {}, body)));
  };
  const kpi = (label, value, delta) => h('div', { class: 'kpi' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, fmt(value)),
    typeof delta === 'number' ? h('div', { class: `delta ${delta < 0 ? 'down' : 'up'}` }, `${delta > 0 ? '+' : ''}${fmt(delta)}% ${tr('vs_prev')}`) : null);
  const controls = (fields, onApply) => {
    const inputs = {};
    const els = fields.map((f) => {
      let input;
      if (f.options) {
        input = h('select', { name: f.name }, f.options.map(([v, label]) => h('option', { value: v, selected: String(v) === String(f.value) ? true : null }, label)));
      } else {
        input = h('input', { name: f.name, type: f.type || 'text', value: f.value || '', class: f.wide ? 'wide' : null, placeholder: f.placeholder || null, min: f.min || null, max: f.max || null });
      }
      inputs[f.name] = input;
      return h('label', {}, f.label, input);
    });
    const apply = () => onApply(Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()])));
    const form = h('form', { class: 'controls', onsubmit: (e) => { e.preventDefault(); apply(); } }, els, h('button', { type: 'submit' }, tr('apply')));
    for (const el of Object.values(inputs)) if (el.tagName === 'SELECT') el.addEventListener('change', apply);
    return form;
  };
  const addDays = (day, n) => {
    const d = new Date(`${day}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  };
  const maxDay = (a, b) => (a > b ? a : b);
  // Runs the cards' loaders; the page is "ready" when every one has drawn or failed.
  const settle = async (jobs) => {
    await Promise.allSettled(jobs);
    document.body.dataset.state = 'ready';
  };
  const guard = (c, f) => f().catch((e) => showError(c.body, e));
  const dates = (q) => {
    const as_of = q.as_of || me.last_day;
    const days = Math.max(1, Math.min(365, parseInt(q.days || '14', 10) || 14));
    return { as_of, days };
  };

  // ------------------------------------------------------------------ pages
  const pages = {};

  pages.login = (q) => {
    const input = h('input', { type: 'password', id: 'token', autocomplete: 'off', placeholder: 'vf_…' });
    const msg = q.error ? h('div', { class: 'error', role: 'alert' }, q.error) : null;
    const form = h('form', { class: 'login', onsubmit: async (e) => {
      e.preventDefault();
      token = input.value.trim();
      localStorage.setItem('vitals.token', token);
      await start('#/');
    } }, h('h1', {}, tr('login.title')), h('p', { class: 'sub' }, tr('login.hint')), msg,
    h('label', {}, tr('login.token'), input), h('button', { class: 'btn', type: 'submit' }, tr('login.submit')));
    fill($('main'), form);
    document.body.dataset.state = 'ready';
  };

  pages.overview = (q) => {
    const { as_of, days } = dates(q);
    const from = maxDay(me.first_day, addDays(as_of, -89));
    const main = $('main');
    const kpis = card('', 'w12');
    kpis.el.querySelector('h2').remove();
    const activity = card(tr('overview.activity'), 'w12');
    const bands = card(tr('overview.bands'));
    const renewals = card(tr('overview.renewals'));
    const moved = card(tr('overview.moved'), 'w12');
    const revenue = card(tr('overview.revenue'), 'w12');
    fill(main, h('h1', {}, tr('overview.title')), h('div', { class: 'sub' }, tr('overview.sub', { as_of })),
      controls([{ name: 'as_of', label: tr('ctl.as_of'), type: 'date', value: as_of, min: me.first_day, max: me.last_day },
        { name: 'days', label: tr('ctl.days'), type: 'number', value: days, min: 1, max: 365 }], (v) => { location.hash = link('overview', '', v); }),
      h('div', { class: 'grid' }, kpis.el, activity.el, bands.el, renewals.el, revenue.el, moved.el));
    const health = report('health_scores', { as_of, days });
    const lifecycle = report('account_lifecycle', { as_of });
    return [
      guard(activity, async () => {
        const r = await report('activity_trend', { from, to: as_of });
        trendChart(activity, 'activity', r, 'activity_trend');
      }),
      guard(kpis, async () => {
        const r = (await health).rows;
        const avg = r.length ? r.reduce((s, x) => s + (x.health || 0), 0) / r.length : null;
        fill(kpis.body, h('div', { class: 'kpis' }, kpi(tr('kpi.accounts'), r.length), kpi(tr('kpi.paid'), r.filter((x) => x.is_paid).length),
          kpi(tr('kpi.green'), r.filter((x) => x.band === 'green').length), kpi(tr('kpi.red'), r.filter((x) => x.band === 'red').length), kpi(tr('kpi.avg_health'), avg)));
      }),
      guard(bands, async () => {
        const r = (await health).rows;
        const quadrants = [...new Set(r.map((x) => x.quadrant))].sort();
        stackedCounts(bands, 'bands', quadrants, r.map((x) => [x.quadrant, x.band]), 'health_scores');
      }),
      guard(renewals, async () => {
        const [hs, lc] = await Promise.all([health, lifecycle]);
        const band = Object.fromEntries(hs.rows.map((x) => [x.org_id, x.band]));
        const bucket = (d) => (d === null || d === undefined ? 'none' : d < 0 ? 'past' : d <= 30 ? '30' : d <= 60 ? '60' : d <= 90 ? '90' : d <= 180 ? '180' : 'more');
        const order = ['past', '30', '60', '90', '180', 'more', 'none'];
        const pairs = lc.rows.filter((x) => x.is_paid).map((x) => [bucket(x.days_to_renewal), band[x.org_id] || null]);
        const used = order.filter((b) => pairs.some((p) => p[0] === b));
        stackedCounts(renewals, 'renewals', used, pairs, 'account_lifecycle', (b) => tr(`bucket.${b}`));
      }),
      guard(revenue, async () => {
        // Twelve months to as_of; a lake without subscriptions says so calmly.
        let r;
        try {
          r = await report('revenue_retention', { period: 'month', from: `${addDays(as_of, -334).slice(0, 7)}-01`, to: as_of });
        } catch (e) {
          if (/has no subscriptions/.test(e.message || '')) return fill(revenue.body, h('div', { class: 'empty' }, tr('revenue.none')));
          throw e;
        }
        revenueChart(revenue, r);
      }),
      guard(moved, async () => {
        const r = (await health).rows.filter((x) => typeof x.health_change === 'number')
          .sort((a, b) => Math.abs(b.health_change) - Math.abs(a.health_change)).slice(0, 10);
        fill(moved.body, table(r, ['name', 'csm', 'band', 'health', 'health_change', 'moved_most', 'temperature', 'quadrant'], { linkAccounts: true, keep: { as_of, days } }));
      }),
    ];
  };

  // NRR and GRR per period as lines, MRR at the end as bars; the totals below.
  const revenueChart = (c, r) => {
    if (!r.rows.length) return fill(c.body, h('div', { class: 'empty' }, tr('empty')));
    const el = h('div', { class: 'chart' });
    const cols = ['period_start', 'mrr_start', 'new', 'expansion', 'reactivation', 'contraction', 'churned', 'mrr_end', 'nrr_pct', 'grr_pct', 'logo_churn_pct'];
    fill(c.body, el, table(r.rows, cols));
    const months = r.rows.map((x) => x.period_start.slice(0, 7));
    const line = (col) => ({ name: colName(col), type: 'line', yAxisIndex: 1, showSymbol: true, showAllSymbol: true, symbolSize: 5, data: r.rows.map((x) => x[col]) });
    chart(el, 'revenue', {
      tooltip: { trigger: 'axis' }, legend, grid: baseGrid,
      xAxis: { type: 'category', data: months },
      yAxis: [{ type: 'value', name: colName('mrr_end') }, { type: 'value', name: '%', scale: true, splitLine: { show: false } }],
      series: [{ name: colName('mrr_end'), type: 'bar', itemStyle: { color: '#c7d7fe' }, data: r.rows.map((x) => x.mrr_end) }, line('nrr_pct'), line('grr_pct')],
    }, r.rows.length, 'revenue_retention', 'each');
  };

  // A line chart of a daily series: one mark per row on every line.
  const trendChart = (c, id, r, source) => {
    if (!r.rows.length) return fill(c.body, h('div', { class: 'empty' }, tr('empty')));
    const el = h('div', { class: 'chart' });
    fill(c.body, el);
    const days = r.rows.map((x) => x.day);
    const line = (col, axis) => ({ name: colName(col), type: 'line', yAxisIndex: axis, showSymbol: true, showAllSymbol: true, symbolSize: 4, data: r.rows.map((x) => x[col]) });
    chart(el, id, {
      tooltip: { trigger: 'axis' }, legend, grid: baseGrid,
      xAxis: { type: 'category', data: days },
      yAxis: [{ type: 'value', name: colName('active_users') + ' / ' + colName('visits') }, { type: 'value', name: colName('minutes'), splitLine: { show: false } }],
      series: [line('active_users', 0), line('visits', 0), line('minutes', 1)],
    }, r.rows.length, source, 'each');
  };

  // Bars of counts: x = the first of each pair, stacked by health band (the second).
  const stackedCounts = (c, id, categories, pairs, source, label) => {
    if (!pairs.length) return fill(c.body, h('div', { class: 'empty' }, tr('empty')));
    const el = h('div', { class: 'chart' });
    fill(c.body, el);
    const bandsSeen = ['green', 'yellow', 'red', null].filter((b) => pairs.some((p) => p[1] === b));
    let marks = 0;
    const series = bandsSeen.map((b) => ({
      name: word('band', b), type: 'bar', stack: 'all', itemStyle: { color: BAND_COLOURS[b] || '#98a2b3' },
      data: categories.map((cat) => {
        const n = pairs.filter((p) => p[0] === cat && p[1] === b).length;
        if (n) marks += 1;
        return n || null;
      }),
    }));
    chart(el, id, {
      tooltip: { trigger: 'axis' }, legend, grid: baseGrid,
      xAxis: { type: 'category', data: categories.map(label || ((x) => x)), axisLabel: { interval: 0 } }, yAxis: { type: 'value' }, series,
    }, marks, source, 'sum');
  };

  pages.accounts = (q) => {
    const { as_of, days } = dates(q);
    const csm = me.role === 'csm' ? me.name : (q.csm || '');
    const keep = { as_of: q.as_of, days: q.days };
    const main = $('main');
    const alerts = card(tr('accounts.alerts'), 'w12', tr('accounts.alerts_note'));
    const declining = card(tr('accounts.declining'), 'w12', tr('accounts.decline_note'));
    const quadrant = card(tr('accounts.quadrant'), 'w8', tr('accounts.quadrant_note'));
    const stages = card(tr('accounts.stages'), 'w4');
    const list = card(tr('accounts.list'), 'w12');
    const fields = [{ name: 'as_of', label: tr('ctl.as_of'), type: 'date', value: as_of, min: me.first_day, max: me.last_day },
      { name: 'days', label: tr('ctl.days'), type: 'number', value: days, min: 1, max: 365 }];
    if (me.sees_all) fields.unshift({ name: 'csm', label: tr('ctl.csm'), value: csm, options: [['', tr('ctl.all_csms')], ...me.csms.map((c) => [c, c])] });
    fill(main, h('h1', {}, tr('accounts.title') + (csm ? ` · ${csm}` : '')), h('div', { class: 'sub' }, tr('accounts.sub', { as_of, days })),
      controls(fields, (v) => { location.hash = link('accounts', '', v); }),
      h('div', { class: 'grid' }, alerts.el, declining.el, quadrant.el, stages.el, list.el));
    const mine = (rows) => (csm ? rows.filter((x) => x.csm === csm) : rows);
    const health = report('health_scores', { as_of, days }).then((r) => mine(r.rows));
    const lifecycle = report('account_lifecycle', { as_of }).then((r) => mine(r.rows));
    return [
      guard(alerts, async () => {
        const r = await report('alerts', { as_of, lookback: '28 days', days });
        const rows = mine(r.rows).map((x) => Object.assign({}, x, { rule: word('rule', x.rule), severity: word('severity', x.severity) }));
        fill(alerts.body, table(rows, ['severity', 'name', 'csm', 'rule', 'first_seen', 'reason', 'health', 'days_to_renewal'], { linkAccounts: true, keep }));
      }),
      guard(declining, async () => {
        const r = await report('declining_accounts', { csms: me.sees_all ? 1000 : 1, per_csm: 50, days, as_of });
        const rows = mine(r.rows);
        if (!rows.length) return fill(declining.body, h('div', { class: 'empty' }, tr('empty')));
        const el = h('div', { class: 'chart', style: `height:${Math.max(200, 26 * rows.length + 60)}px` });
        fill(declining.body, el, table(rows, ['rank', 'name', 'csm', 'plan', 'arr', 'decline_pct', 'pattern', 'days_to_renewal', 'active_users', 'active_users_change_pct', 'visits_change_pct', 'minutes_change_pct', 'key_users_lost'], { linkAccounts: true, keep }));
        const c = chart(el, 'declining', {
          tooltip: { trigger: 'axis' }, grid: { left: 160, right: 40, top: 10, bottom: 30 },
          xAxis: { type: 'value', name: '%' }, yAxis: { type: 'category', inverse: true, data: rows.map((x) => x.name || x.org_id) },
          series: [{ name: tr('accounts.decline_chart'), type: 'bar', data: rows.map((x) => ({ value: x.decline_pct, org: x.org_id, itemStyle: { color: x.pattern === 'key_users' || x.pattern === 'concentrated' ? '#d64545' : '#f08c00' } })) }],
        }, rows.length, 'declining_accounts', 'sum');
        c.on('click', (p) => { if (p.data && p.data.org) location.hash = link('account', p.data.org, keep); });
      }),
      guard(quadrant, async () => {
        const rows = await health;
        if (!rows.length) return fill(quadrant.body, h('div', { class: 'empty' }, tr('empty')));
        const el = h('div', { class: 'chart tall' });
        fill(quadrant.body, el);
        const s = me.settings;
        const plays = {};
        for (const x of rows) plays[x.quadrant] = x.play;
        const corner = (name, left, top) => (plays[name] ? { type: 'text', left, top, style: { text: `${name}\n→ ${plays[name]}`, fill: '#667085', font: '11px sans-serif' } } : null);
        const series = ['green', 'yellow', 'red'].map((b) => ({
          name: word('band', b), type: 'scatter', symbolSize: 9, itemStyle: { color: BAND_COLOURS[b] },
          data: rows.filter((x) => x.band === b).map((x) => ({ value: [x.temperature, x.health], name: x.name || x.org_id, org: x.org_id })),
        }));
        series[0].markLine = { silent: true, symbol: 'none', lineStyle: { color: '#98a2b3', type: 'dashed' }, label: { show: false },
          data: [{ xAxis: s.warm_from }, { yAxis: s.healthy_from }] };
        const c = chart(el, 'quadrant', {
          tooltip: { formatter: (p) => `${p.data.name}<br>${colName('health')} ${fmt(p.data.value[1])} · ${colName('temperature')} ${fmt(p.data.value[0])}` },
          legend, grid: { left: 56, right: 24, top: 40, bottom: 48, containLabel: true },
          xAxis: { type: 'value', min: 0, max: 100, name: colName('temperature'), nameLocation: 'middle', nameGap: 28 },
          yAxis: { type: 'value', min: 0, max: 100, name: colName('health') },
          graphic: [corner('healthy but cold', 70, 44), corner('healthy and warm', '62%', 44), corner('cold and unhealthy', 70, '78%'), corner('warm but unhealthy', '62%', '78%')].filter(Boolean),
          series,
        }, rows.filter((x) => x.band in BAND_COLOURS).length, 'health_scores', 'sum');
        c.on('click', (p) => { if (p.data && p.data.org) location.hash = link('account', p.data.org, keep); });
      }),
      guard(stages, async () => {
        const rows = await lifecycle;
        const order = ['onboarding', 'adoption', 'growth', 'renewal'];
        const counts = order.map((st) => rows.filter((x) => x.stage === st).length);
        const shown = order.filter((_, i) => counts[i] > 0);
        if (!shown.length) return fill(stages.body, h('div', { class: 'empty' }, tr('empty')));
        const el = h('div', { class: 'chart tall' });
        fill(stages.body, el);
        chart(el, 'stages', {
          tooltip: {}, grid: baseGrid, xAxis: { type: 'category', data: shown.map((st) => word('stage', st)) }, yAxis: { type: 'value' },
          series: [{ type: 'bar', name: colName('stage'), data: shown.map((st) => counts[order.indexOf(st)]), itemStyle: { color: '#1f6feb' } }],
        }, shown.length, 'account_lifecycle', 'sum');
      }),
      guard(list, async () => {
        const [hs, lc] = await Promise.all([health, lifecycle]);
        const byOrg = Object.fromEntries(lc.map((x) => [x.org_id, x]));
        const rows = hs.map((x) => Object.assign({}, x, { stage: (byOrg[x.org_id] || {}).stage, days_to_renewal: (byOrg[x.org_id] || {}).days_to_renewal }))
          .sort((a, b) => (a.health ?? 0) - (b.health ?? 0));
        fill(list.body, table(rows, ['name', 'csm', 'plan', 'band', 'health', 'health_change', 'temperature', 'quadrant', 'play', 'stage', 'days_to_renewal', 'active_users', 'seats'], { linkAccounts: true, keep }));
      }),
    ];
  };

  pages.account = async (q, org) => {
    if (!org && me.role === 'account') org = me.org_id;
    const main = $('main');
    if (!org) {
      fill(main, h('h1', {}, tr('nav.account')), h('p', {}, tr('open_account')));
      return [];
    }
    const { as_of, days } = dates(q);
    const from = maxDay(me.first_day, addDays(as_of, -89));
    const title = h('h1', {}, org);
    const sub = h('div', { class: 'sub' }, '');
    const kpis = card('', 'w12');
    kpis.el.querySelector('h2').remove();
    const usage = card(tr('account.usage'), 'w12');
    const keyUsers = card(tr('account.key_users'), 'w12');
    const modules = card(tr('account.modules'), 'w8');
    const life = card(tr('account.lifecycle'), 'w4');
    const interventions = card(tr('account.interventions'), 'w12');
    const features = card(tr('account.features', { days }), 'w12');
    const history = card(tr('account.health_history'), 'w12');
    const timeline = card(tr('account.timeline'), 'w12');
    fill(main, title, sub, controls([{ name: 'as_of', label: tr('ctl.as_of'), type: 'date', value: as_of, min: me.first_day, max: me.last_day },
      { name: 'days', label: tr('ctl.days'), type: 'number', value: days, min: 1, max: 365 }], (v) => { location.hash = link('account', org, v); }),
    h('div', { class: 'grid' }, kpis.el, history.el, usage.el, keyUsers.el, modules.el, life.el, features.el, interventions.el, timeline.el));
    const lifecycle = report('account_lifecycle', { as_of }).then((r) => r.rows.find((x) => x.org_id === org));
    const health = report('health_scores', { as_of, days }).then((r) => r.rows.find((x) => x.org_id === org));
    return [
      guard(kpis, async () => {
        const [u, hs, lc] = await Promise.all([report('account_usage', { as_of, days }).then((r) => r.rows.find((x) => x.org_id === org)), health, lifecycle]);
        const a = u || hs || lc || {};
        title.textContent = a.name ? `${a.name} (${org})` : org;
        sub.textContent = tr('account.sub', { plan: a.plan || '–', csm: a.csm || '–', as_of });
        fill(kpis.body, h('div', { class: 'kpis' },
          hs ? kpi(tr('account.health'), hs.health, null) : null,
          u ? [kpi(colName('login_users'), u.login_users, u.login_users_change_pct), kpi(colName('visits'), u.visits, u.visits_change_pct),
            kpi(colName('duration_min'), u.duration_min, u.duration_min_change_pct), kpi(colName('page_views'), u.page_views, u.page_views_change_pct)] : null,
          lc ? kpi(colName('days_to_renewal'), lc.days_to_renewal, null) : null));
      }),
      guard(usage, async () => trendChart(usage, 'usage', await report('activity_trend', { from, to: as_of, org_id: org }), 'activity_trend')),
      guard(history, async () => {
        // Up to twelve weeks back, ending on as_of.
        const weeks = Math.max(0, Math.min(12, Math.floor((Date.parse(as_of) - Date.parse(me.first_day)) / 86400000 / 7)));
        const r = await report('health_history', { from: addDays(as_of, -7 * weeks), to: as_of, every: '7 days', days, org_id: org });
        if (!r.rows.length) return fill(history.body, h('div', { class: 'empty' }, tr('empty')));
        const rows = r.rows.slice().sort((a, b) => (a.as_of < b.as_of ? -1 : 1));
        const el = h('div', { class: 'chart' });
        fill(history.body, h('div', { class: 'note' }, tr('account.history_note', { days })), el);
        const line = (col) => ({ name: colName(col), type: 'line', showSymbol: true, showAllSymbol: true, symbolSize: 6, data: rows.map((x) => x[col]) });
        chart(el, 'health_history', {
          tooltip: { trigger: 'axis' }, legend, grid: baseGrid,
          xAxis: { type: 'category', data: rows.map((x) => x.as_of) }, yAxis: { type: 'value', min: 0, max: 100 },
          series: [line('health'), line('temperature')],
        }, rows.length, 'health_history', 'each');
      }),
      guard(keyUsers, async () => {
        const r = await report('key_user_usage', { org_id: org, as_of, days });
        const rows = r.rows;
        if (!rows.length) return fill(keyUsers.body, h('div', { class: 'empty' }, tr('empty')));
        const el = h('div', { class: 'chart', style: `height:${Math.max(220, 22 * rows.length + 70)}px` });
        fill(keyUsers.body, h('div', { class: 'note' }, tr('account.key_chart')), el,
          table(rows, ['name', 'user_id', 'role', 'is_key_user', 'logins', 'logins_change_pct', 'visits', 'visits_change_pct', 'duration_min', 'duration_min_change_pct', 'pages_per_visit', 'last_seen'], { userOf: org, keep: { as_of: q.as_of, days: q.days } }));
        const label = (x) => `${x.is_key_user ? '★ ' : ''}${x.name || x.user_id}`;
        chart(el, 'key_users', {
          tooltip: { trigger: 'axis' }, legend, grid: { left: 150, right: 40, top: 30, bottom: 30 },
          xAxis: { type: 'value', name: colName('minutes') }, yAxis: { type: 'category', inverse: true, data: rows.map(label) },
          series: [{ name: colName('duration_min'), type: 'bar', data: rows.map((x) => x.duration_min ?? 0), itemStyle: { color: '#1f6feb' } },
            { name: tr('prev'), type: 'bar', data: rows.map((x) => x.duration_min_prev ?? 0), itemStyle: { color: '#b8c7e0' } }],
        }, rows.length, 'key_user_usage', 'each');
      }),
      guard(modules, async () => moduleShare(modules, 'modules', await report('module_usage_share', { from, to: as_of, org_id: org }))),
      guard(features, async () => {
        // What this customer lives in, and what it stopped using: the largest changes first among equals.
        const r = await report('account_feature_usage', { org_id: org, as_of, days });
        fill(features.body, table(r.rows, ['module', 'event', 'users', 'user_share_pct', 'users_prev', 'users_change_pct', 'minutes', 'minutes_change_pct', 'first_used']));
      }),
      guard(life, async () => {
        const lc = await lifecycle;
        if (!lc) return fill(life.body, h('div', { class: 'empty' }, tr('empty')));
        const dl = h('dl', { class: 'facts' });
        for (const [k, v] of [['stage', word('stage', lc.stage)], ['milestones', `${lc.milestones_reached ?? 0} / ${lc.milestones_total ?? 0}: ${lc.milestones || '–'}`],
          ['next_milestone', lc.next_milestone], ['days_to_first_value', lc.days_to_first_value], ['renewal_date', lc.renewal_date], ['days_to_renewal', lc.days_to_renewal]]) {
          dl.append(h('dt', {}, colName(k)), h('dd', {}, fmt(v)));
        }
        fill(life.body, dl);
      }),
      guard(timeline, async () => {
        // Newest first: what a CSM reads before a call. Asked last: it scores every
        // account day by day for its alerts, the costliest part of the page.
        await Promise.allSettled([lifecycle, health]);
        const r = await report('account_timeline', { org_id: org, from, to: as_of, days });
        const rows = r.rows.slice().sort((a, b) => (a.day === b.day ? a.kind_rank - b.kind_rank : a.day < b.day ? 1 : -1));
        fill(timeline.body, table(rows, ['day', 'kind', 'detail', 'change', 'who'], { kinds: 'timeline' }));
      }),
      guard(interventions, async () => {
        const r = await report('intervention_effect', { days: Math.min(days, 30) });
        fill(interventions.body, table(r.rows.filter((x) => x.org_id === org), ['at', 'csm', 'kind', 'visits_per_day_before', 'visits_per_day_after', 'change_pct', 'matched_change_pct', 'effect_pct_points']));
      }),
    ];
  };

  // One user of an account: their days, and their numbers against the period before.
  pages.user = (q, user) => {
    const org = q.org || (me.role === 'account' ? me.org_id : '');
    const { as_of, days } = dates(q);
    const from = maxDay(me.first_day, addDays(as_of, -89));
    const main = $('main');
    const kpis = card('', 'w12');
    kpis.el.querySelector('h2').remove();
    const usage = card(tr('user.usage'), 'w12');
    const events = card(tr('user.events'), 'w12');
    const title = h('h1', {}, user);
    fill(main, title, h('div', { class: 'sub' }, h('a', { href: link('account', org, { as_of: q.as_of, days: q.days }) }, `← ${org}`)),
      controls([{ name: 'as_of', label: tr('ctl.as_of'), type: 'date', value: as_of, min: me.first_day, max: me.last_day },
        { name: 'days', label: tr('ctl.days'), type: 'number', value: days, min: 1, max: 365 }], (v) => { location.hash = link('user', user, Object.assign({ org }, v)); }),
      h('div', { class: 'grid' }, kpis.el, usage.el, events.el));
    return [
      guard(events, async () => {
        const r = await report('user_events', { user_id: user, from, to: as_of, limit: 200 });
        fill(events.body, table(r.rows, ['event_time', 'event', 'module', 'page', 'session_id', 'minutes']));
      }),
      guard(kpis, async () => {
        const u = (await report('key_user_usage', { org_id: org, as_of, days })).rows.find((x) => x.user_id === user);
        if (!u) return fill(kpis.body, h('div', { class: 'empty' }, tr('empty')));
        title.textContent = `${u.is_key_user ? '★ ' : ''}${u.name || user} (${user}) · ${u.role || ''}`;
        fill(kpis.body, h('div', { class: 'kpis' }, kpi(colName('logins'), u.logins, u.logins_change_pct), kpi(colName('visits'), u.visits, u.visits_change_pct),
          kpi(colName('duration_min'), u.duration_min, u.duration_min_change_pct), kpi(colName('page_views'), u.page_views, u.page_views_change_pct),
          kpi(colName('last_seen'), fmt(u.last_seen), null)));
      }),
      guard(usage, async () => trendChart(usage, 'user_usage', await report('activity_trend', { from, to: as_of, org_id: org, user_id: user }), 'activity_trend')),
    ];
  };

  // Share of time per module and day as 100% stacked bars: one bar segment per row.
  const moduleShare = (c, id, r) => {
    if (!r.rows.length) return fill(c.body, h('div', { class: 'empty' }, tr('empty')));
    const el = h('div', { class: 'chart tall' });
    fill(c.body, el);
    const days = [...new Set(r.rows.map((x) => x.day))].sort();
    const modules = [...new Set(r.rows.map((x) => x.module))].sort();
    const at = new Map(r.rows.map((x) => [`${x.day}|${x.module}`, x.share_pct]));
    chart(el, id, {
      tooltip: { trigger: 'axis', valueFormatter: (v) => (v === null || v === undefined ? '–' : `${fmt(v)}%`) }, legend, grid: baseGrid,
      xAxis: { type: 'category', data: days }, yAxis: { type: 'value', max: 100, axisLabel: { formatter: '{value}%' } },
      series: modules.map((m) => ({ name: m, type: 'bar', stack: 'share', barCategoryGap: '10%', data: days.map((d) => (at.has(`${d}|${m}`) ? at.get(`${d}|${m}`) : null)) })),
    }, r.rows.length, 'module_usage_share', 'sum');
  };

  pages.product = (q) => {
    const ev = me.settings.events;
    const to = q.to || me.last_day;
    const from = q.from || maxDay(me.first_day, addDays(to, -89));
    const steps = q.steps || [ev.signup, ...me.settings.milestones, ev.conversion].join(',');
    const window_ = q.window || '7 days';
    const breakdown = q.breakdown || '';
    const cohort = q.cohort_event || ev.signup;
    const ret = q.return_event || ev.login;
    const period = q.period || 'week';
    const unit = q.unit === 'account' ? 'account' : 'user';
    const stepList = steps.split(',').map((e) => e.trim()).filter(Boolean);
    const first = stepList[0];
    const dropAsked = parseInt(q.drop || '0', 10) || 0;
    // Paths leave out the config's [paths] ignore list, else page views and
    // logins (between every action, they would be every path's next step).
    const configured = me.settings.paths_ignore || [];
    const ignore = q.ignore ?? (configured.length ? configured : [ev.page_view, ev.login]).filter((e) => e !== first).join(',');
    const main = $('main');
    const funnel = card(tr('product.funnel'), 'w12');
    const sankey = card(tr('product.paths', { event: first }), 'w12');
    const topPaths = card(tr('product.top_paths', { event: first }));
    const correlation = card(tr('product.correlation'));
    const dropoffs = card(tr('product.dropoffs', { event: first, next: stepList[1] || '' }), 'w12');
    const convert = card(tr('product.convert', { a: first, b: stepList[stepList.length - 1] }), 'w12');
    const matrix = card(tr('product.retention'), 'w8');
    const curve = card(tr('product.curve'), 'w4');
    const magic = card(tr('product.magic'), 'w12');
    const features = card(tr('product.features'));
    const modules = card(tr('product.modules'));
    const channels = card(tr('product.channels'), 'w12');
    const breakdowns = ['', 'utm_source', 'utm_medium', 'browser', 'os', 'region', 'plan', 'role'];
    fill(main, h('h1', {}, tr('product.title')), h('div', { class: 'sub' }, tr('product.sub')),
      controls([
        { name: 'from', label: tr('ctl.from'), type: 'date', value: from, min: me.first_day, max: me.last_day },
        { name: 'to', label: tr('ctl.to'), type: 'date', value: to, min: me.first_day, max: me.last_day },
        { name: 'steps', label: tr('ctl.steps'), value: steps, wide: true },
        { name: 'window', label: tr('ctl.window'), value: window_ },
        { name: 'breakdown', label: tr('ctl.breakdown'), value: breakdown, options: breakdowns.map((b) => [b, b || tr('ctl.none')]) },
        { name: 'unit', label: tr('ctl.unit'), value: unit, options: ['user', 'account'].map((u) => [u, tr(`unit.${u}`)]) },
        { name: 'ignore', label: tr('ctl.ignore'), value: ignore },
        { name: 'cohort_event', label: tr('ctl.cohort_event'), value: cohort },
        { name: 'return_event', label: tr('ctl.return_event'), value: ret },
        { name: 'period', label: tr('ctl.period'), value: period, options: ['day', 'week', 'month'].map((p) => [p, tr(`period.${p}`)]) },
      ], (v) => { location.hash = link('product', '', v); }),
      h('div', { class: 'grid' }, funnel.el, dropoffs.el, convert.el, sankey.el, topPaths.el, correlation.el, matrix.el, curve.el, magic.el, features.el, modules.el, channels.el));
    // Clicking a funnel bar (step k) shows who reached step k - 1 but not k,
    // and how long the others took between the two.
    const funnelAnswer = report('funnel', { steps, window: window_, breakdown, from, to, unit });
    const chosenDrop = (async () => {
      if (dropAsked >= 1 && dropAsked < stepList.length) return dropAsked;
      // Otherwise the step most users drop out after.
      const r = await funnelAnswer;
      const lost = new Map();
      for (const x of r.rows) if (x.step > 1) lost.set(x.step - 1, (lost.get(x.step - 1) || 0) + (x.dropped || 0));
      let best = 1;
      for (const [k, n] of lost) if (n > (lost.get(best) || 0)) best = k;
      return best;
    })();
    return [
      guard(funnel, async () => {
        const r = await funnelAnswer;
        if (!r.rows.length) return fill(funnel.body, h('div', { class: 'empty' }, tr('empty')));
        const el = h('div', { class: 'chart' });
        fill(funnel.body, h('div', { class: 'note' }, tr('product.funnel_click')), el, table(r.rows, ['breakdown', 'step', 'event', 'users', 'dropped', 'conversion_from_previous_pct', 'conversion_from_first_pct', 'median_hours_from_previous']));
        const stepNames = [...new Map(r.rows.map((x) => [x.step, x.event])).entries()].sort((a, b) => a[0] - b[0]);
        const values = [...new Set(r.rows.map((x) => x.breakdown ?? ''))];
        // The bar whose drop-offs are listed below is outlined.
        const drop = await chosenDrop;
        const c = chart(el, 'funnel', {
          tooltip: { trigger: 'axis' }, legend, grid: baseGrid,
          xAxis: { type: 'category', data: stepNames.map(([s, e]) => `${s}. ${e}`) }, yAxis: { type: 'value', name: colName('users') },
          series: values.map((v) => ({ name: v || colName('users'), type: 'bar', cursor: 'pointer', data: stepNames.map(([s]) => { const x = r.rows.find((y) => (y.breakdown ?? '') === v && y.step === s); return x ? { value: x.users, itemStyle: s === drop + 1 ? { borderColor: '#d9480f', borderWidth: 2 } : {} } : null; }) })),
        }, r.rows.length, 'funnel', 'sum');
        c.on('click', (p) => {
          const step = stepNames[p.dataIndex] && stepNames[p.dataIndex][0];
          if (step > 1) location.hash = link('product', '', Object.assign({}, q, { drop: step - 1 }));
        });
      }),
      (async () => {
        let r;
        try {
          r = await report('retention_matrix', { cohort_event: cohort, return_event: ret, period, periods: 8, from, to, unit });
        } catch (e) { showError(matrix.body, e); showError(curve.body, e); return; }
        // A period not reached yet has no value, and no mark.
        const cells = r.rows.filter((x) => x.cohort_start !== null && x.retained_pct !== null);
        const line = r.rows.filter((x) => x.cohort_start === null && x.retained_pct !== null);
        if (!cells.length) fill(matrix.body, h('div', { class: 'empty' }, tr('empty')));
        else {
          const el = h('div', { class: 'chart tall' });
          fill(matrix.body, el);
          const cohorts = [...new Set(cells.map((x) => x.cohort_start))].sort();
          const ks = [...new Set(cells.map((x) => x.period_k))].sort((a, b) => a - b);
          const size = Object.fromEntries(cells.map((x) => [x.cohort_start, x.cohort_users]));
          chart(el, 'retention', {
            tooltip: { formatter: (p) => `${cohorts[p.data[1]]} · k=${ks[p.data[0]]}: ${fmt(p.data[2])}%` }, grid: { left: 130, right: 20, top: 10, bottom: 40 },
            xAxis: { type: 'category', data: ks.map(String), name: 'k' }, yAxis: { type: 'category', data: cohorts.map((c) => `${c} (${size[c]})`), inverse: true },
            visualMap: { show: false, min: 0, max: 100, inRange: { color: ['#f1f5f9', '#1f6feb'] } },
            series: [{ type: 'heatmap', label: { show: true, formatter: (p) => fmt(p.data[2], 0) }, data: cells.map((x) => [ks.indexOf(x.period_k), cohorts.indexOf(x.cohort_start), x.retained_pct]) }],
          }, cells.length, 'retention_matrix', 'sum');
        }
        if (!line.length) fill(curve.body, h('div', { class: 'empty' }, tr('empty')));
        else {
          const el = h('div', { class: 'chart tall' });
          fill(curve.body, el);
          chart(el, 'retention_curve', {
            tooltip: { trigger: 'axis' }, grid: baseGrid, xAxis: { type: 'category', data: line.map((x) => String(x.period_k)), name: 'k' },
            yAxis: { type: 'value', max: 100, axisLabel: { formatter: '{value}%' } },
            series: [{ type: 'line', name: colName('retained_pct'), showAllSymbol: true, data: line.map((x) => x.retained_pct) }],
          }, line.length, 'retention_matrix', 'sum');
        }
      })(),
      guard(sankey, async () => {
        // Where users go after the first step: one node per (step, event), so
        // an event met again later is a node further right (no cycles).
        const r = await report('path_edges', { start_event: first, steps: 5, window: '1 day', unit, from, to, ignore });
        if (!r.rows.length) return fill(sankey.body, h('div', { class: 'empty' }, tr('empty')));
        const el = h('div', { class: 'chart tall' });
        fill(sankey.body, el);
        const node = (step, event) => `${step}. ${event}`;
        const names = new Set();
        for (const x of r.rows) { names.add(node(x.step, x.from_event)); names.add(node(x.step + 1, x.to_event)); }
        chart(el, 'paths', {
          tooltip: { trigger: 'item' },
          series: [{
            type: 'sankey', left: 10, right: 120, top: 10, bottom: 10, nodeAlign: 'left', emphasis: { focus: 'adjacency' },
            lineStyle: { color: 'gradient', opacity: 0.35 }, label: { fontSize: 11 },
            data: [...names].map((name) => ({ name })),
            links: r.rows.map((x) => ({ source: node(x.step, x.from_event), target: node(x.step + 1, x.to_event), value: x.users })),
          }],
        }, r.rows.length, 'path_edges', 'sum');
      }),
      guard(topPaths, async () => {
        const r = await report('paths', { start_event: first, steps: 5, window: '1 day', unit, from, to, ignore, top: 10 });
        fill(topPaths.body, table(r.rows.filter((x) => x.users > 0), ['rank', 'path_text', 'users', 'share_pct']));
      }),
      guard(correlation, async () => {
        // The strongest first, as log odds: bars right of 0 go with converting.
        const r = await report('funnel_correlation', { steps, window: window_, from, to });
        const rows = r.rows.filter((x) => typeof x.odds_ratio === 'number' && x.odds_ratio > 0).slice(0, 15);
        if (!rows.length) return fill(correlation.body, h('div', { class: 'empty' }, tr('empty')));
        const el = h('div', { class: 'chart tall' });
        fill(correlation.body, h('div', { class: 'note' }, tr('product.correlation_note')), el, table(rows, ['kind', 'name', 'value', 'success_with', 'failure_with', 'odds_ratio', 'ci_low', 'ci_high', 'correlation']));
        const label = (x) => (x.kind === 'event' ? x.name : `${x.name} = ${x.value}`);
        const colour = { success: BAND_COLOURS.green, failure: BAND_COLOURS.red, none: '#9aa5b1' };
        const num = (v) => new Intl.NumberFormat(lang === 'zh' ? 'zh-CN' : 'en-US', { maximumSignificantDigits: 3 }).format(v);
        // Bars of log2(odds ratio): a tick per doubling, written ×1/4, ×1/2, ×1, ×2, ×4.
        const times = (v) => (v >= 0 ? `×${num(2 ** v)}` : `×1/${num(2 ** -v)}`);
        chart(el, 'correlation', {
          tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, formatter: (ps) => { const x = rows[ps[0].dataIndex]; return `${label(x)}<br>${colName('odds_ratio')}: ${num(x.odds_ratio)} (95%: ${num(x.ci_low)}–${num(x.ci_high)})<br>${word('correlation', x.correlation)}`; } },
          grid: { left: 160, right: 30, top: 10, bottom: 40 },
          xAxis: { type: 'value', name: colName('odds_ratio'), nameLocation: 'middle', nameGap: 26, interval: 1, axisLabel: { formatter: times } },
          yAxis: { type: 'category', inverse: true, data: rows.map(label) },
          series: [{ type: 'bar', name: colName('odds_ratio'), data: rows.map((x) => ({ value: Math.log2(x.odds_ratio), itemStyle: { color: colour[x.correlation] || colour.none } })) }],
        }, rows.length, 'funnel_correlation', 'sum');
      }),
      guard(dropoffs, async () => {
        const drop = await chosenDrop;
        dropoffs.el.querySelector('h2').textContent = tr('product.dropoffs', { event: stepList[drop - 1], next: stepList[drop] });
        const r = await report('funnel_dropoffs', { steps, window: window_, step: drop, from, to, limit: 50 });
        fill(dropoffs.body, table(r.rows, ['user_id', 'org_id', 'reached_at', 'utm_source', 'browser', 'plan', 'role', 'next_events'], { linkUsers: true }));
      }),
      guard(convert, async () => {
        // From the clicked step to the next, else over the whole funnel.
        const [a, b] = dropAsked >= 1 && dropAsked < stepList.length ? [dropAsked, dropAsked + 1] : [1, stepList.length];
        convert.el.querySelector('h2').textContent = tr('product.convert', { a: stepList[a - 1], b: stepList[b - 1] });
        const r = await report('funnel_time_to_convert', { steps, window: window_, from_step: a, to_step: b, bins: 20, from, to, unit });
        if (!r.rows.length) return fill(convert.body, h('div', { class: 'empty' }, tr('empty')));
        const el = h('div', { class: 'chart' });
        fill(convert.body, el);
        chart(el, 'time_to_convert', {
          tooltip: { trigger: 'axis', formatter: (ps) => { const x = r.rows[ps[0].dataIndex]; return `${x.label}: ${fmt(x.users)} (${fmt(x.share_pct)}%, ${tr('product.cumulative')} ${fmt(x.cumulative_pct)}%)`; } },
          grid: baseGrid,
          xAxis: { type: 'category', data: r.rows.map((x) => x.label), axisLabel: { rotate: 30 } },
          yAxis: [{ type: 'value', name: colName(unit === 'account' ? 'accounts' : 'users') }, { type: 'value', max: 100, axisLabel: { formatter: '{value}%' }, splitLine: { show: false } }],
          series: [{ type: 'bar', name: colName('users'), barCategoryGap: '5%', data: r.rows.map((x) => x.users) },
            { type: 'line', name: colName('cumulative_pct'), yAxisIndex: 1, showAllSymbol: true, symbolSize: 4, data: r.rows.map((x) => x.cumulative_pct) }],
        }, r.rows.length, 'funnel_time_to_convert', 'each');
      }),
      guard(magic, async () => {
        const r = await report('magic_number', {});
        fill(magic.body, table(r.rows.slice(0, 20), ['section', 'event', 'n', 'event2', 'n2', 'phi', 'label', 'ppv_pct', 'sensitivity_pct', 'support_pct', 'users_with']));
      }),
      guard(features, async () => {
        const r = await report('feature_retention', { period });
        const rows = r.rows.filter((x) => typeof x.difference_pct_points === 'number')
          .sort((a, b) => Math.abs(b.difference_pct_points) - Math.abs(a.difference_pct_points)).slice(0, 15);
        if (!rows.length) return fill(features.body, h('div', { class: 'empty' }, tr('empty')));
        const el = h('div', { class: 'chart tall' });
        fill(features.body, el);
        chart(el, 'features', {
          tooltip: { trigger: 'axis' }, grid: { left: 150, right: 30, top: 10, bottom: 30 },
          xAxis: { type: 'value' }, yAxis: { type: 'category', inverse: true, data: rows.map((x) => `${x.kind}: ${x.feature}`) },
          series: [{ type: 'bar', name: colName('difference_pct_points'), data: rows.map((x) => ({ value: x.difference_pct_points, itemStyle: { color: x.difference_pct_points >= 0 ? '#2e9f5b' : '#d64545' } })) }],
        }, rows.length, 'feature_retention', 'sum');
      }),
      guard(modules, async () => moduleShare(modules, 'product_modules', await report('module_usage_share', { from, to }))),
      guard(channels, async () => {
        const r = await report('channel_quality', { from, to });
        fill(channels.body, table(r.rows));
      }),
    ];
  };

  pages.reports = async (q, name) => {
    const main = $('main');
    const list = await call('reports');
    if (!name) {
      fill(main, h('h1', {}, tr('reports.title')), h('div', { class: 'sub' }, tr('reports.sub')),
        h('ul', { class: 'reports' }, list.reports.map((r) => h('li', {}, h('a', { href: link('reports', r.name) }, r.name), ' — ', h('span', { class: 'desc' }, r.description)))));
      return [];
    }
    const r = list.reports.find((x) => x.name === name);
    if (!r) throw new Error(`no report named '${name}'`);
    const out = card(name, 'w12', r.description);
    const fields = r.arguments.map((a) => ({ name: a.name, label: `${a.name} (${a.type})`, value: q[a.name] || '', placeholder: a.default === null ? '' : (a.default || "''") }));
    const csv = h('button', { class: 'btn ghost', type: 'button', onclick: async () => {
      const text = await call(`reports/${encodeURIComponent(name)}`, q, 'text/csv');
      const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/csv' })), download: `${name}.csv` });
      a.click();
      URL.revokeObjectURL(a.href);
    } }, tr('report.csv'));
    fill(main, h('h1', {}, name), controls(fields, (v) => { location.hash = link('reports', name, v); }), h('p', {}, csv), h('div', { class: 'grid' }, out.el));
    const missing = r.arguments.filter((a) => a.default === null && !q[a.name] && !['from', 'to', 'as_of', 'days', 'period'].includes(a.name)).map((a) => a.name);
    if (missing.length) {
      fill(out.body, h('div', { class: 'empty' }, tr('report.needs', { args: missing.join(', ') })));
      return [];
    }
    return [guard(out, async () => {
      const res = await report(name, q);
      fill(out.body, h('div', { class: 'note' }, tr('report.rows', { n: res.rows.length })), table(res.rows, res.columns.map((c) => c.name), { linkAccounts: true }));
    })];
  };

  // ------------------------------------------------------------------ frame
  const NAV = { overview: 'nav.overview', accounts: 'nav.accounts', account: 'nav.account', user: 'nav.user', product: 'nav.product', reports: 'nav.reports' };
  // An account token has one account; the others get the account (and user) page once one is open.
  const open = (current) => (current === 'account' ? ['account'] : current === 'user' ? ['user'] : []);
  const navPages = (current) => (me.role === 'account' ? ['account', ...(current === 'user' ? ['user'] : []), 'product', 'reports'] : ['overview', 'accounts', ...open(current), 'product', 'reports']);
  const frame = (current) => {
    $('lang').textContent = tr('lang');
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    $('logout').textContent = tr('signout');
    $('logout').hidden = !me;
    $('who').textContent = me ? `${me.name} · ${me.role}` : '';
    $('nav').replaceChildren(...(me ? navPages(current).map((p) => h('a', { href: p === current ? location.hash : link(p), class: p === current ? 'on' : null }, tr(NAV[p]))) : []));
  };
  const home = () => (me.role === 'account' ? 'account' : me.role === 'csm' ? 'accounts' : 'overview');

  let rendering = 0;
  const render = async () => {
    const mine = ++rendering;
    document.body.dataset.state = 'loading';
    resetCharts();
    let { page, arg, q } = route();
    if (!token || !me) page = 'login';
    else if (!page || !pages[page] || page === 'login') { location.replace(link(home())); return; }
    frame(page);
    try {
      const jobs = await pages[page](q, arg);
      if (mine === rendering) await settle(jobs || []);
    } catch (e) {
      fill($('main'), h('div', { class: 'error', role: 'alert' }, e.message || String(e)));
      document.body.dataset.state = 'ready';
    }
  };

  const signOut = (why) => {
    answers.clear();
    token = null;
    me = null;
    localStorage.removeItem('vitals.token');
    location.hash = link('login', '', why ? { error: why } : {});
  };

  const start = async (target) => {
    if (token) {
      try {
        me = await call('me');
      } catch (e) {
        me = null;
        // A refused token has already led back to the sign-in page.
        if (e.status === 401) return;
        fill($('main'), h('div', { class: 'error', role: 'alert' }, e.message));
        document.body.dataset.state = 'ready';
        return;
      }
    }
    if (target && location.hash !== target) location.hash = target;
    else await render();
  };

  $('lang').addEventListener('click', () => { lang = lang === 'zh' ? 'en' : 'zh'; localStorage.setItem('vitals.lang', lang); render(); });
  $('logout').addEventListener('click', () => signOut());
  window.addEventListener('hashchange', render);

  // A link printed by `vitals serve` carries the token in the fragment (never
  // sent to a server): keep it, then drop it from the address bar and history.
  const m = location.hash.match(/^#token=([^&]+)/);
  if (m) {
    token = decodeURIComponent(m[1]);
    localStorage.setItem('vitals.token', token);
    history.replaceState(null, '', `${location.pathname}#/`);
  }
  start();
})();
